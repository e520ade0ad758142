"""One check's result: its value, its limits, what it means, and pass / doubtful / fail.

A :class:`Limit` says in which direction a value is good (``min``: at least, ``max``: at most)
and where it turns doubtful and where it fails; either limit may be absent (a check that can
only make a result doubtful has no ``fail`` limit). A check that cannot be measured (a missing
sequence, no enhancing tumour to judge) is ``not_applicable`` and does not count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

PASS, DOUBTFUL, FAIL, NOT_APPLICABLE = "pass", "doubtful", "fail", "not_applicable"
STATUSES = (PASS, DOUBTFUL, FAIL, NOT_APPLICABLE)


@dataclass(frozen=True)
class Limit:
    """Where a check's value turns doubtful and where it fails.

    ``direction`` ``min``: the value should be at least ``doubtful`` (below: doubtful) and at
    least ``fail`` (below: fail); ``max``: the value should be at most these.
    """

    direction: str  # min | max
    doubtful: Optional[float] = None
    fail: Optional[float] = None

    def __post_init__(self) -> None:
        if self.direction not in ("min", "max"):
            raise ValueError(f"direction must be 'min' or 'max', not {self.direction!r}")

    def grade(self, value: Optional[float]) -> str:
        """The status of ``value`` (``not_applicable`` for None or NaN)."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return NOT_APPLICABLE

        def beyond(limit: Optional[float]) -> bool:
            if limit is None:
                return False
            return value < limit if self.direction == "min" else value > limit

        if beyond(self.fail):
            return FAIL
        if beyond(self.doubtful):
            return DOUBTFUL
        return PASS

    def to_dict(self) -> Dict[str, Any]:
        return {"direction": self.direction, "doubtful": self.doubtful, "fail": self.fail}

    def describe(self) -> str:
        """E.g. ``at least 0.5 (fail below 0)``."""
        word, fail_word = ("at least", "below") if self.direction == "min" else ("at most", "above")
        parts = []
        if self.doubtful is not None:
            parts.append(f"{word} {self.doubtful:g}")
        if self.fail is not None:
            parts.append(f"fails {fail_word} {self.fail:g}")
        return ", ".join(parts)


@dataclass(frozen=True)
class CheckResult:
    """One check of one segmentation."""

    name: str
    group: str  # sequences | appearance | spatial | model
    value: Optional[float]
    limit: Limit
    meaning: str  # one line: what the value measures and why it matters
    status: str = ""
    #: why the check could not be measured, or what the value was computed from
    note: str = ""
    details: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.status:
            object.__setattr__(self, "status", self.limit.grade(self.value))
        if self.status not in STATUSES:
            raise ValueError(f"unknown status {self.status!r}")

    def to_dict(self) -> Dict[str, Any]:
        value = None if self.value is None or (isinstance(self.value, float) and math.isnan(self.value)) \
            else round(float(self.value), 4)
        out: Dict[str, Any] = {"name": self.name, "group": self.group, "value": value,
                               "threshold": self.limit.to_dict(), "status": self.status, "meaning": self.meaning}
        if self.note:
            out["note"] = self.note
        if self.details:
            out["details"] = self.details
        return out


def measured(name: str, group: str, value: Optional[float], limit: Limit, meaning: str,
             note: str = "", **details: Any) -> CheckResult:
    """A :class:`CheckResult` graded by ``limit`` (``not_applicable`` when ``value`` is None)."""
    return CheckResult(name, group, None if value is None else float(value), limit, meaning, note=note,
                       details={k: v for k, v in details.items() if v is not None})


def not_applicable(name: str, group: str, limit: Limit, meaning: str, why: str) -> CheckResult:
    return CheckResult(name, group, None, limit, meaning, NOT_APPLICABLE, why)
