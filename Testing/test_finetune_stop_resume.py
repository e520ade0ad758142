"""Real ``voxmmsd finetune`` processes: SIGTERM, the stop file and kill -9, then --resume, continue exactly.

The resumed run's per-iteration losses and its metrics.csv (whole-epoch means, validation)
equal those of an uninterrupted run with the same seed (deterministic CPU); no iteration
appears twice in events.jsonl; a resume refuses changed settings; a second trainer on the
same run folder is refused by the folder lock. The patch stream is a function of the
global sample number, also with several DataLoader workers (checked in-process).
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest
import torch
from support.training import assert_same_losses, env, progress, reached, set_args
from support.waiting import wait_until
from voxmmsd import synthetic
from voxmmsd.jobs.events import read_events
from voxmmsd.jobs.run_folder import RunFolder

ITERS, EPOCH = 12, 4
STAGE = "finetune"


def _cli(*args) -> List[str]:
    return [sys.executable, "-m", "voxmmsd", "-q", "finetune"] + [str(a) for a in args]


def _new(data: Path, run: Path) -> List[str]:
    return _cli("--data", data, "--out", run, "--max-iters", ITERS, "--device", "cpu",
                *set_args([f"train.epoch_iters={EPOCH}", "data.workers=0"]))


def _resume(run: Path, *extra) -> List[str]:
    return _cli("--resume", run, "--device", "cpu", *extra)


def _start(args: List[str]) -> subprocess.Popen:
    return subprocess.Popen(args, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _metrics(run: Path) -> List[Dict[str, str]]:
    with open(run / "metrics.csv", encoding="utf-8") as f:
        return [{k: v for k, v in row.items() if k != "elapsed_s"} for row in csv.DictReader(f)]


def _same_metrics(got: List[Dict[str, str]], ref: List[Dict[str, str]]) -> None:
    assert [r["iteration"] for r in got] == [r["iteration"] for r in ref]
    for a, b in zip(got, ref):
        for k in b:
            if b[k] == "" or k in ("epoch", "iteration"):
                assert a[k] == b[k], (k, a, b)
            else:
                assert float(a[k]) == pytest.approx(float(b[k]), rel=1e-6, abs=1e-7), (k, a, b)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("finetune_resume")
    data = synthetic.write_dataset(root / "data", n=4)
    run = root / "reference"
    res = subprocess.run(_new(data, run), env=env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    losses = progress(run, STAGE)
    assert [i for i, _ in losses] == list(range(1, ITERS + 1))
    rows = _metrics(run)
    assert [int(r["iteration"]) for r in rows] == [EPOCH, 2 * EPOCH, 3 * EPOCH]
    return data, losses, rows


@pytest.mark.slow  # exactness of resume: run by .ci/run after the default tests (see README)
def test_sigterm_mid_epoch_then_resume_is_exact(reference, tmp_path: Path) -> None:
    data, ref, ref_rows = reference
    run = tmp_path / "run"
    proc = _start(_new(data, run))
    assert wait_until(reached(run, STAGE, EPOCH + 1), timeout=240, proc=proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    assert "--resume" in out
    events = read_events(run / "events.jsonl")
    assert events[-1]["event"] == "stopped" and "SIGTERM" in events[-1]["message"]
    stopped_at = events[-1]["iteration"]
    assert EPOCH < stopped_at < ITERS
    ckpt = torch.load(str(run / "checkpoints" / "last.pt"), weights_only=True)
    assert ckpt["iteration"] == stopped_at and ckpt["epoch"]["count"] == stopped_at % EPOCH
    assert not (run / "model").exists()

    refused = subprocess.run(_resume(run, "--set", "train.lr=0.5"), env=env(), capture_output=True, text=True,
                             timeout=300)
    assert refused.returncode != 0 and "train.lr: 0.003 -> 0.5" in refused.stderr
    assert "--allow-changed-settings" in refused.stderr
    res = subprocess.run(_resume(run, "--set", "train.lr=0.003"), env=env(), capture_output=True, text=True,
                         timeout=300)  # the run's own value again is no change
    assert res.returncode == 0, res.stderr[-3000:]
    events = read_events(run / "events.jsonl")
    starts = [e for e in events if e["event"] == "start"]
    assert len(starts) == 2 and starts[1]["resumed"] and starts[1]["iteration"] == stopped_at
    assert events[-1]["event"] == "done" and (run / "model" / "model.json").is_file()
    got = progress(run, STAGE)
    assert [i for i, _ in got] == list(range(1, ITERS + 1))
    assert_same_losses(got, ref)
    _same_metrics(_metrics(run), ref_rows)  # the interrupted epoch's mean covers the whole epoch


@pytest.mark.slow  # kill -9 exactness is also covered by the default pre-training test
def test_kill_9_then_resume_is_exact_without_duplicates(reference, tmp_path: Path) -> None:
    data, ref, ref_rows = reference
    folder = RunFolder(tmp_path / "run")
    proc = _start(_new(data, folder.root))
    # past the checkpoint at the first epoch's end
    assert wait_until(reached(folder.root, STAGE, EPOCH + 1), timeout=240, proc=proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert not any(e["event"] in ("done", "stopped") for e in read_events(folder.events))
    (folder.checkpoints / ".last.pt.k9x.tmp.pt").write_bytes(b"partial")  # what an interrupted save leaves
    res = subprocess.run(_resume(folder.root), env=env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    events = read_events(folder.events)
    start = [e for e in events if e["event"] == "start"][-1]
    assert start["iteration"] % EPOCH == 0 and start["dropped_events"] >= 1
    got = progress(folder.root, STAGE)
    assert [i for i, _ in got] == list(range(1, ITERS + 1))  # the lost iterations are not listed twice
    assert_same_losses(got, ref)
    _same_metrics(_metrics(folder.root), ref_rows)
    assert folder.stale_temp_files() == []


def test_stop_file_and_one_trainer_per_run_folder(reference, tmp_path: Path) -> None:
    data, ref, _ = reference
    folder = RunFolder(tmp_path / "run")
    proc = _start(_new(data, folder.root))
    assert wait_until(reached(folder.root, STAGE, 1), timeout=240, proc=proc)
    # the first trainer is paused while the second starts (it holds its lock), so that on a loaded
    # machine it cannot finish all its iterations before the stop is requested
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        second = subprocess.run(_new(data, folder.root), env=env(), capture_output=True, text=True, timeout=300)
    finally:
        folder.request_stop()
        os.kill(proc.pid, signal.SIGCONT)
    assert second.returncode != 0 and "in use by another VoxMMSD process" in second.stderr
    assert f"pid {proc.pid}" in second.stderr and "fine-tuning run" in second.stderr
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    events = read_events(folder.events)
    assert events[-1]["event"] == "stopped" and "stop.requested" in events[-1]["message"]
    assert events[-2]["event"] == "checkpoint" and not folder.lock_file.exists()
    ckpt = torch.load(str(folder.last_checkpoint), weights_only=True)
    assert ckpt["iteration"] == events[-1]["iteration"] < ITERS
    assert_same_losses(progress(folder.root, STAGE), ref)  # (a resume removes the stop file: test_jobs_run_folder)


def test_patch_stream_resumes_at_any_batch_with_workers(tmp_path: Path) -> None:
    from voxmmsd.data.cache import build_cache, settings_key
    from voxmmsd.finetune.data import PatchStream, make_loader
    from voxmmsd.io.discovery import find_dataset
    from voxmmsd.preprocessing import PreprocessConfig

    data = synthetic.write_dataset(tmp_path / "data", n=2)
    pre = PreprocessConfig()
    cases = build_cache(find_dataset(data, require_all=True, require_labels=True), tmp_path / "cache", pre, "auto",
                        show_progress=False)
    folder, ids = tmp_path / "cache" / settings_key(pre, True), [c.case_id for c in cases]

    def batches(start: int, workers: int, n: int) -> List[Dict[str, torch.Tensor]]:
        stream = PatchStream(folder, ids, (16, 16, 16), 4, augment=True, seed=3).positioned(start, 2)
        it = iter(make_loader(stream, 2, workers, generator=torch.Generator().manual_seed(0)))
        return [next(it) for _ in range(n)]

    whole = batches(0, 0, 5)
    assert not torch.equal(whole[0]["image"], whole[1]["image"])
    # a resume at batch 3, with two worker processes: the same batches as the uninterrupted stream (the same
    # draws; a worker runs torch on one thread, so resampled voxels may differ in the last float bit)
    for a, b in zip(whole[3:], batches(3, 2, 2)):
        assert torch.equal(a["label"], b["label"])
        assert torch.allclose(a["image"], b["image"], rtol=0, atol=1e-5)
