"""Helpers for tests that run real training processes: environment, waiting on events, reading losses."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

from voxmmsd.jobs.events import read_events


def env() -> Dict[str, str]:
    """One thread, fixed hashing: a deterministic CPU run."""
    out = dict(os.environ)
    out.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0", PYTHONUNBUFFERED="1")
    return out


def progress(run: Path, stage: str) -> List[Tuple[int, float]]:
    """``(iteration, loss)`` of every progress event of ``stage``, in file order (duplicates kept)."""
    return [(int(e["iteration"]), float(e["losses"]["loss"])) for e in read_events(run / "events.jsonl")
            if e["stage"] == stage and e["event"] == "progress"]


def wait_until(proc: subprocess.Popen, condition: Callable[[], bool], timeout: float = 240.0) -> None:
    """Poll ``condition`` until it holds; fail if the process ends first or time runs out."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        if condition():
            return
        if proc.poll() is not None:
            raise AssertionError(f"the run ended early (rc {proc.returncode}): "
                                 f"{proc.stderr.read()[-3000:] if proc.stderr else ''}")
        time.sleep(0.02)
    raise AssertionError("timed out waiting for the run")


def reached(run: Path, stage: str, iteration: int) -> Callable[[], bool]:
    return lambda: any(i >= iteration for i, _ in progress(run, stage))


def assert_same_losses(got: List[Tuple[int, float]], ref: List[Tuple[int, float]]) -> None:
    """Every iteration once, in order, with the uninterrupted run's loss (to float rounding)."""
    its = [i for i, _ in got]
    assert its == sorted(set(its)), f"iterations repeated or out of order: {its}"
    ref_by_it = dict(ref)
    assert set(its) <= set(ref_by_it), (its, sorted(ref_by_it))
    for i, v in got:
        assert abs(v - ref_by_it[i]) <= 1e-6 * max(1.0, abs(ref_by_it[i])), (i, v, ref_by_it[i])
