"""Helpers for tests that train: the tiny fine-tuning settings, and for real training processes their
environment, progress and losses (waiting on them: :func:`support.waiting.wait_until`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Dict, List, Sequence, Tuple

from voxmmsd.jobs.events import read_events

#: a tiny network on small synthetic cases (``--set`` values of voxmmsd finetune)
TINY_SETTINGS: List[str] = [
    "network.channels=[4,8,16,32,64]",
    "data.patch_size=[32,32,32]",
    "data.batch_size=2",
    "data.val=1",
    "train.lr=0.003",
    "train.log_every=1",
    "package.onnx=false",
]


def set_args(extra: Sequence[str] = ()) -> List[str]:
    """``--set`` arguments of :data:`TINY_SETTINGS` followed by ``extra``."""
    out: List[str] = []
    for s in list(TINY_SETTINGS) + list(extra):
        out += ["--set", s]
    return out


def env() -> Dict[str, str]:
    """One thread, fixed hashing: a deterministic CPU run."""
    out = dict(os.environ)
    out.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0", PYTHONUNBUFFERED="1")
    return out


def progress(run: Path, stage: str) -> List[Tuple[int, float]]:
    """``(iteration, loss)`` of every progress event of ``stage``, in file order (duplicates kept)."""
    return [(int(e["iteration"]), float(e["losses"]["loss"])) for e in read_events(run / "events.jsonl")
            if e["stage"] == stage and e["event"] == "progress"]


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
