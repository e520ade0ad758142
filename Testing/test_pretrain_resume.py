"""Stop and resume of real ``voxmmsd pretrain`` processes reproduce the uninterrupted run exactly.

SIGTERM, the stop file and kill -9 each interrupt a run; the resumed run's per-iteration
losses equal the uninterrupted run's (deterministic CPU mode, same seed), no iteration
appears twice in events.jsonl, stale temporary files are removed, and a second trainer
on the same run folder is refused by the folder lock. Also torchrun with two gloo processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest
from support.training import assert_same_losses, env, progress, reached
from support.waiting import wait_until
from voxmmsd import synthetic
from voxmmsd.jobs.events import read_events
from voxmmsd.jobs.run_folder import RunFolder

SETTINGS = ["network.channels=4,8,16,32,64", "data.patch_size=32,32,32", "method.block_size=8", "method.n_pairs=64",
            "method.out_dim=32", "data.workers=0", "train.log_every=1", "train.deterministic=true",
            "train.tensorboard=false", "train.checkpoint_every=3", "train.optimizer=adamw"]
ITERS = 8
STAGE = "pretrain"


def _args(data: Path, run: Path, cache: Path) -> List[str]:
    args = [sys.executable, "-m", "voxmmsd", "pretrain", "--no-progress", "--data", str(data), "--out", str(run),
            "--cache", str(cache), "--max-iters", str(ITERS), "--device", "cpu"]
    for s in SETTINGS:
        args += ["--set", s]
    return args


def _resume(run: Path) -> List[str]:
    return [sys.executable, "-m", "voxmmsd", "pretrain", "--no-progress", "--resume", str(run), "--device", "cpu"]


def _start(args: List[str]) -> subprocess.Popen:
    return subprocess.Popen(args, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _finish(run: Path) -> None:
    res = subprocess.run(_resume(run), env=env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrain_resume")
    data = synthetic.write_dataset(root / "data", n=3)
    cache = root / "cache"
    run = root / "reference"
    subprocess.run(_args(data, run, cache), check=True, env=env(), capture_output=True, timeout=600)
    losses = progress(run, STAGE)
    assert [i for i, _ in losses] == list(range(1, ITERS + 1))
    return data, cache, losses


@pytest.mark.slow  # exactness of resume: run by .ci/run after the default tests (see README)
def test_sigterm_then_resume_reproduces_the_losses(reference, tmp_path):
    data, cache, ref = reference
    run = tmp_path / "run"
    proc = _start(_args(data, run, cache))
    assert wait_until(reached(run, STAGE, 2), timeout=240, proc=proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=240) == 0
    events = read_events(run / "events.jsonl")
    assert events[-1]["event"] == "stopped" and "SIGTERM" in events[-1]["message"]
    stopped_at = events[-1]["iteration"]
    assert 2 <= stopped_at < ITERS
    _finish(run)
    events = read_events(run / "events.jsonl")
    assert events[-1]["event"] == "done"
    assert [e for e in events if e["event"] == "start"][-1]["iteration"] == stopped_at
    got = progress(run, STAGE)
    assert [i for i, _ in got] == list(range(1, ITERS + 1))
    assert_same_losses(got, ref)


@pytest.mark.slow  # exactness of resume: run by .ci/run after the default tests (see README)
def test_kill_9_then_resume_drops_the_lost_iterations_and_stale_files(reference, tmp_path):
    data, cache, ref = reference
    run = tmp_path / "run"
    proc = _start(_args(data, run, cache))
    assert wait_until(reached(run, STAGE, 4), timeout=240, proc=proc)  # past the checkpoint at 3, before the one at 6
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    folder = RunFolder(run)
    events = read_events(folder.events)
    assert not any(e["event"] in ("done", "stopped") for e in events)
    assert any(i >= 4 for i, _ in progress(run, STAGE))  # iterations after the checkpoint, lost with the process
    stale = folder.checkpoints / ".last.pt.k9x.tmp.pt"  # what a save interrupted by kill -9 leaves
    stale.write_bytes(b"partial")
    (folder.root / ".loss.png.k9x.tmp.png").write_bytes(b"partial")
    _finish(run)
    events = read_events(folder.events)
    starts = [e for e in events if e["event"] == "start"]
    assert events[-1]["event"] == "done" and starts[-1]["iteration"] in (3, 6) and starts[-1]["dropped_events"] >= 1
    got = progress(run, STAGE)
    assert [i for i, _ in got] == list(range(1, ITERS + 1))  # each iteration once
    assert_same_losses(got, ref)
    assert folder.stale_temp_files() == [] and not stale.exists()
    assert sorted(p.name for p in folder.checkpoints.iterdir()) == ["last.pt"]


@pytest.mark.slow  # the stop file and the lock are also covered by the default fine-tuning test
def test_stop_file_stops_and_a_second_trainer_is_refused(reference, tmp_path):
    data, cache, ref = reference
    folder = RunFolder(tmp_path / "run")
    folder.request_stop()  # a stale request from an earlier run: removed when the run starts
    proc = _start(_args(data, folder.root, cache))
    assert wait_until(reached(folder.root, STAGE, 1), timeout=240, proc=proc)
    assert folder.lock_file.is_file() and not folder.stop_file.exists()
    # a second trainer on the same folder (here: a resume while it runs) is refused by the lock; the first
    # is paused meanwhile (it keeps its lock), so that on a loaded machine it cannot finish before the stop
    # a resume needs a checkpoint before it meets the lock
    assert wait_until(folder.last_checkpoint.is_file, timeout=240, proc=proc)
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        second = subprocess.run(_resume(folder.root), env=env(), capture_output=True, text=True, timeout=300)
    finally:
        folder.request_stop()
        os.kill(proc.pid, signal.SIGCONT)
    assert second.returncode != 0 and "in use by another VoxMMSD process" in second.stderr
    assert f"pid {proc.pid}" in second.stderr
    assert proc.wait(timeout=240) == 0, proc.stderr.read() if proc.stderr else ""
    events = read_events(folder.events)
    assert events[-1]["event"] == "stopped" and "stop.requested" in events[-1]["message"]
    assert events[-2]["event"] == "checkpoint" and events[-2]["reason"] == "stopped"
    stopped_at = events[-1]["iteration"]
    assert stopped_at < ITERS and not folder.lock_file.exists()
    _finish(folder.root)  # the stop file left behind is removed by the resume, which runs to the end
    assert not folder.stop_file.exists()
    got = progress(folder.root, STAGE)
    assert [i for i, _ in got] == list(range(1, ITERS + 1))
    assert_same_losses(got, ref)


@pytest.mark.slow  # two processes: run by .ci/run after the default tests (see README)
def test_torchrun_two_processes_on_gloo(reference, tmp_path):
    data, cache, _ = reference
    run = tmp_path / "ddp"
    args = _args(data, run, cache)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m"] + args[2:]
    cmd[cmd.index("--max-iters") + 1] = "4"
    proc = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = read_events(run / "events.jsonl")
    starts = [e for e in events if e["event"] == "start"]
    assert len(starts) == 1 and starts[0]["world_size"] == 2  # only rank 0 writes
    prog = [e for e in events if e["stage"] == "pretrain" and e["event"] == "progress"]
    assert [e["iteration"] for e in prog] == [1, 2, 3, 4]
    assert prog[0]["pairs_per_s"] > 0 and events[-1]["event"] == "done"
    assert (run / "backbone.safetensors").is_file()
