"""A small deterministic CPU pre-training run with the default head and loss: healthy? learning?

Synthetic cases (voxmmsd.synthetic), the reduced network, K = 512 (the default), 600 iterations.
Slow (about 3 minutes on an idle 2-core machine).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from voxmmsd.jobs.events import read_events
from voxmmsd.pretrain.config import load_config
from voxmmsd.pretrain.loop import run_pretraining

REDUCED = ["network.channels=4,8,16,32,64", "data.patch_size=32,32,32", "method.block_size=8", "method.n_pairs=128",
           "data.workers=0",
           "train.log_every=5", "train.checkpoint_every=1000", "train.deterministic=true", "train.iterations=600"]
LN_K = math.log(512)


@pytest.fixture(scope="module")
def run_events(tmp_path_factory):
    from voxmmsd import synthetic

    tmp = tmp_path_factory.mktemp("learning")
    data = synthetic.write_dataset(tmp / "data", n=4)
    cfg = load_config(None, REDUCED + [f"data.root={data}", f"data.cache_dir={tmp / 'cache'}"])
    assert run_pretraining(cfg, tmp / "run", show_progress=False) == 0
    events = [e for e in read_events(tmp / "run" / "events.jsonl") if e["stage"] == "pretrain"]
    return [e for e in events if e["event"] == "progress"], [e for e in events if e["event"] == "warning"]


@pytest.mark.slow
def test_default_distillation_stays_healthy(run_events):
    prog, warnings = run_events
    assert len(prog) == 120 and not warnings
    diag = [e["diagnostics"] for e in prog[4:]]  # after the warm-up
    t_ent = np.array([d["teacher_entropy"] for d in diag])
    s_ent = np.array([d["student_entropy"] for d in diag])
    assert np.all(t_ent < 0.95 * LN_K) and np.all(t_ent > 0.05 * LN_K)
    assert np.all(s_ent < 0.99 * LN_K) and np.all(s_ent >= t_ent)
    assert np.all(np.array([d["voxel_cosine"] for d in diag]) < 0.5)
    recon = np.array([e["losses"]["recon"] for e in prog])
    assert recon[-5:].mean() < recon[:5].mean()
    # the distillation loss moves (ln K = 6.24)
    distill = np.array([e["losses"]["distill"] for e in prog])
    assert distill[-10:].mean() < distill[:6].mean() - 0.2


@pytest.mark.slow
def test_default_distillation_falls_clearly_below_ln_k(run_events):
    # measured on an idle 2-core machine: 6.43 over the first 100 iterations, 4.29 over the last 100
    prog, _ = run_events
    distill = np.array([e["losses"]["distill"] for e in prog])
    assert distill[-20:].mean() < 0.9 * LN_K
    t_ent = np.array([e["diagnostics"]["teacher_entropy"] for e in prog[-20:]])
    assert np.all(t_ent < 0.8 * LN_K) and np.all(t_ent > 0.05 * LN_K)
