"""A real `voxmmsd finetune` process: SIGTERM -> checkpoint + "stopped" + exit 0; --resume continues."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from test_finetune_helpers import set_args
from voxmmsd.jobs.events import read_events


def _cli(*args) -> list:
    return [sys.executable, "-m", "voxmmsd", "-q", "finetune"] + [str(a) for a in args]


def test_sigterm_then_resume(synthetic_dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(_cli("--data", synthetic_dataset, "--out", run, "--max-iters", 500,
                                 *set_args(["train.epoch_iters=1000"])),
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            its = [e["iteration"] for e in read_events(run / "events.jsonl") if e["event"] == "progress"
                   and e["stage"] == "finetune"]
            if its and its[-1] >= 3:
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "--resume" in out
    events = read_events(run / "events.jsonl")
    assert events[-1]["event"] == "stopped"
    stopped_at = events[-1]["iteration"]
    assert 3 <= stopped_at < 500
    ckpt = torch.load(str(run / "checkpoints" / "last.pt"), weights_only=True)
    assert ckpt["iteration"] == stopped_at and ckpt["config"]["train"]["iterations"] == 500
    assert not (run / "model").exists()

    res = subprocess.run(_cli("--resume", run, "--max-iters", stopped_at + 2), env=env, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    events = read_events(run / "events.jsonl")
    starts = [e for e in events if e["event"] == "start"]
    assert len(starts) == 2 and starts[1]["resumed"] and starts[1]["iteration"] == stopped_at
    prog = [e["iteration"] for e in events[events.index(starts[1]):] if e["event"] == "progress"
            and e["stage"] == "finetune"]
    assert prog == [stopped_at + 1, stopped_at + 2]
    assert events[-1]["event"] == "done" and (run / "model" / "model.json").is_file()
    assert torch.load(str(run / "checkpoints" / "last.pt"), weights_only=True)["iteration"] == stopped_at + 2
