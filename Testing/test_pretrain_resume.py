"""Stop and resume (SIGTERM, kill -9) reproduce the uninterrupted run; torchrun with two gloo processes.

Real subprocesses of the ``voxmmsd`` command, deterministic CPU mode, a tiny network.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import pytest
from voxmmsd import synthetic
from voxmmsd.jobs.events import read_events

SETTINGS = ["network.channels=4,8,16,32,64", "crop_size=32,32,32", "block_size=8", "n_pairs=64", "out_dim=32",
            "workers=0", "log_every=1", "deterministic=true", "tensorboard=false", "checkpoint_every=3",
            "optimizer=adamw"]
ITERS = 8


def _env() -> Dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0")
    return env


def _args(data: Path, run: Path, cache: Path) -> List[str]:
    args = [sys.executable, "-m", "voxmmsd", "pretrain", "--no-progress", "--data", str(data), "--out", str(run),
            "--cache", str(cache), "--max-iters", str(ITERS), "--device", "cpu"]
    for s in SETTINGS:
        args += ["--set", s]
    return args


def _resume(run: Path) -> List[str]:
    return [sys.executable, "-m", "voxmmsd", "pretrain", "--no-progress", "--resume", str(run), "--device", "cpu"]


def _losses(run: Path) -> Dict[int, float]:
    """Loss per iteration; after a resume the later record of an iteration wins."""
    out = {}
    for e in read_events(run / "events.jsonl"):
        if e["stage"] == "pretrain" and e["event"] == "progress":
            out[e["iteration"]] = e["losses"]["loss"]
    return out


def _wait_for_iteration(run: Path, proc: subprocess.Popen, iteration: int, timeout: float = 240.0) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise AssertionError(f"the run ended early: {proc.stderr.read() if proc.stderr else ''}")
        if any(i >= iteration for i in _losses(run)):
            return
        time.sleep(0.02)
    raise AssertionError("timed out waiting for progress")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrain_resume")
    data = synthetic.write_dataset(root / "data", n=3)
    cache = root / "cache"
    run = root / "reference"
    subprocess.run(_args(data, run, cache), check=True, env=_env(), capture_output=True, timeout=600)
    losses = _losses(run)
    assert sorted(losses) == list(range(1, ITERS + 1))
    return data, cache, losses


def test_resume_after_sigterm_reproduces_the_losses(reference, tmp_path):
    data, cache, ref = reference
    run = tmp_path / "run"
    proc = subprocess.Popen(_args(data, run, cache), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    _wait_for_iteration(run, proc, 2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=240) == 0
    events = read_events(run / "events.jsonl")
    assert events[-1]["event"] == "stopped"
    stopped_at = events[-1]["iteration"]
    assert stopped_at < ITERS
    subprocess.run(_resume(run), check=True, env=_env(), capture_output=True, timeout=600)
    events = read_events(run / "events.jsonl")
    assert events[-1]["event"] == "done"
    assert [e for e in events if e["event"] == "start"][-1]["iteration"] == stopped_at
    got = _losses(run)
    assert sorted(got) == list(range(1, ITERS + 1))
    assert all(got[i] == pytest.approx(ref[i], rel=1e-6, abs=1e-7) for i in got), (got, ref)


def test_resume_after_kill_9_reproduces_the_losses(reference, tmp_path):
    data, cache, ref = reference
    run = tmp_path / "run"
    proc = subprocess.Popen(_args(data, run, cache), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    _wait_for_iteration(run, proc, 4)  # past the checkpoint at 3, before the one at 6
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    events = read_events(run / "events.jsonl")
    assert not any(e["event"] in ("done", "stopped") for e in events)
    subprocess.run(_resume(run), check=True, env=_env(), capture_output=True, timeout=600)
    events = read_events(run / "events.jsonl")
    starts = [e for e in events if e["event"] == "start"]
    assert events[-1]["event"] == "done" and starts[-1]["iteration"] in (3, 6)
    got = _losses(run)
    assert sorted(got) == list(range(1, ITERS + 1))
    assert all(got[i] == pytest.approx(ref[i], rel=1e-6, abs=1e-7) for i in got), (got, ref)
    # no temporary checkpoint left behind by the killed process's last save
    assert [p.name for p in (run / "checkpoints").iterdir() if p.name != "last.pt"] == []


def test_torchrun_two_processes_on_gloo(reference, tmp_path):
    data, cache, _ = reference
    run = tmp_path / "ddp"
    args = _args(data, run, cache)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m"] + args[2:]
    cmd[cmd.index("--max-iters") + 1] = "4"
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = read_events(run / "events.jsonl")
    starts = [e for e in events if e["event"] == "start"]
    assert len(starts) == 1 and starts[0]["world_size"] == 2  # only rank 0 writes
    prog = [e for e in events if e["stage"] == "pretrain" and e["event"] == "progress"]
    assert [e["iteration"] for e in prog] == [1, 2, 3, 4]
    assert prog[0]["pairs_per_s"] > 0 and events[-1]["event"] == "done"
    assert (run / "backbone.safetensors").is_file()
