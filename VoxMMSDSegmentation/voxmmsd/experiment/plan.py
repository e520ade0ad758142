"""The plan of a label-efficiency experiment: held-out test cases, and one run per (arm, N, repeat).

Training sets are nested: for a repeat, the N cases used are the first N of one seeded
order of the pool, so a larger N adds cases and never swaps them. Both arms train on
exactly the same cases.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from voxmmsd.errors import ConfigError, InputError
from voxmmsd.finetune.split import shuffled, split_cases

ARMS = ("scratch", "pretrained")


@dataclass(frozen=True)
class RunSpec:
    arm: str  # "scratch" or "pretrained"
    n: int
    repeat: int
    train: Tuple[str, ...]
    val: Tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.arm}_n{self.n:03d}_r{self.repeat}"


def make_plan(ids: Sequence[str], sizes: Sequence[int], test: object = 0.25, val: int = 0, repeats: int = 1,
              seed: int = 0, arms: Sequence[str] = ARMS) -> Tuple[List[str], List[RunSpec]]:
    """(test ids, runs). Raises :class:`InputError` when the pool is too small for the largest N."""
    unknown = [a for a in arms if a not in ARMS]
    if unknown or not arms:
        raise ConfigError(f"Unknown experiment arm(s) {unknown}; use {list(ARMS)}.")
    if not sizes or any(int(n) < 1 for n in sizes):
        raise ConfigError(f"Training-set sizes must be positive whole numbers, not {list(sizes)}.")
    pool, test_ids = split_cases(ids, None, test, seed)
    if not test_ids:
        raise InputError("The experiment needs held-out test cases; give --test a number, fraction or ids.")
    need = max(sizes) + val
    if need > len(pool):
        raise InputError(f"N={max(sizes)} training case(s) plus {val} validation case(s) need {need} cases, but "
                         f"only {len(pool)} remain after {len(test_ids)} test case(s). Use smaller --sizes.")
    runs: List[RunSpec] = []
    for r in range(repeats):
        order = shuffled(pool, seed + 1 + r)
        val_ids: Tuple[str, ...] = tuple(order[len(order) - val:]) if val else ()
        rest = [c for c in order if c not in val_ids]
        for n in sorted(set(int(s) for s in sizes)):
            for arm in arms:
                runs.append(RunSpec(arm, n, r, tuple(rest[:n]), val_ids))
    return sorted(test_ids), runs


def runs_for(runs: Sequence[RunSpec], arm: Optional[str] = None) -> List[RunSpec]:
    return [r for r in runs if arm is None or r.arm == arm]
