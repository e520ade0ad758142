"""Collapse monitoring in real pre-training runs: diagnostics in events.jsonl and TensorBoard, the warning."""

from __future__ import annotations

import logging
import math

import pytest
from voxmmsd.jobs.events import read_events
from voxmmsd.pretrain.config import load_config
from voxmmsd.pretrain.loop import run_pretraining
from voxmmsd.pretrain.monitor import DIAGNOSTICS

TINY = ["network.channels=4,8,16,32,64", "data.patch_size=32,32,32", "method.block_size=8", "method.n_pairs=128",
        "method.out_dim=32",
        "data.workers=0", "train.log_every=1", "train.checkpoint_every=1000", "train.deterministic=true"]


def _run(tmp_path, data, name, extra, caplog):
    cfg = load_config(None, TINY + [f"data.root={data}", f"data.cache_dir={tmp_path / 'cache'}"] + extra)
    with caplog.at_level(logging.WARNING, logger="voxmmsd"):
        assert run_pretraining(cfg, tmp_path / name, show_progress=False) == 0
    events = [e for e in read_events(tmp_path / name / "events.jsonl") if e["stage"] == "pretrain"]
    return events, [r.getMessage() for r in caplog.records if "collapsed" in r.getMessage()]


def test_collapsed_run_warns(tmp_path, synthetic_dataset, caplog):
    # deliberately collapsed: teacher temperature 1 makes the teacher's softmax over cosines flat (~ ln K)
    events, logged = _run(tmp_path, synthetic_dataset, "flat", ["train.iterations=7", "method.teacher_temp=1.0",
                                                                 "method.teacher_temp_end=1.0"], caplog)
    prog = [e for e in events if e["event"] == "progress"]
    assert len(prog) == 7 and all(set(DIAGNOSTICS) <= set(e["diagnostics"]) for e in prog)
    assert all(e["diagnostics"]["teacher_entropy"] > 0.99 * math.log(32) for e in prog)
    warnings = [e for e in events if e["event"] == "warning"]
    assert len(warnings) == 1 and warnings[0]["kind"] == "collapse" and "uniform" in warnings[0]["message"]
    assert 5 <= warnings[0]["iteration"] <= 7
    assert len(logged) == 1 and logged[0] == warnings[0]["message"]
    tb = list((tmp_path / "flat" / "tensorboard").iterdir())
    assert tb
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "flat" / "tensorboard"))
    acc.Reload()
    assert {f"diag/{k}" for k in DIAGNOSTICS} <= set(acc.Tags()["scalars"])


@pytest.mark.slow  # a second run; the warning itself is in the default run (above)
def test_healthy_run_does_not_warn(tmp_path, synthetic_dataset, caplog):
    # the default settings and 12 iterations: the teacher is sharp from the start, no warning
    events, logged = _run(tmp_path, synthetic_dataset, "default", ["train.iterations=12"], caplog)
    prog = [e for e in events if e["event"] == "progress"]
    assert len(prog) == 12 and all(e["diagnostics"]["teacher_entropy"] < 0.95 * math.log(32) for e in prog)
    assert not [e for e in events if e["event"] == "warning"] and not logged
