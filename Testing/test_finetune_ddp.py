"""`torchrun --nproc-per-node 2` fine-tuning with the gloo backend on the CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.training import set_args
from voxmmsd.jobs.events import read_events


@pytest.mark.slow  # two processes; the default run covers torchrun on gloo with pre-training (test_pretrain_resume)
def test_two_processes(synthetic_dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29517",
           "-m", "voxmmsd", "-q", "finetune", "--data", str(synthetic_dataset), "--out", str(run),
           "--max-iters", "4", "--device", "cpu"] + set_args(["train.epoch_iters=2"])
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    events = read_events(run / "events.jsonl")
    starts = [e for e in events if e["event"] == "start"]
    assert len(starts) == 1 and starts[0]["world_size"] == 2  # only rank 0 writes
    assert [e["iteration"] for e in events if e["event"] == "validation"] == [2, 4]
    assert events[-1]["event"] == "done" and (run / "model" / "model.json").is_file()
