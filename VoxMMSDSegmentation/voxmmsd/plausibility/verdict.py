"""All checks of one segmentation and the overall verdict: plausible | doubtful | implausible.

:func:`assess` runs every check of :mod:`.sequences`, :mod:`.appearance` and :mod:`.spatial`
(plus ``model_agreement`` when test-time augmentation measured it). A result is
**implausible** when any check fails, **doubtful** when any is doubtful, else **plausible**.
Checks that cannot be measured (a missing sequence, ET too small to judge) do not count.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from voxmmsd.plausibility.appearance import appearance_checks
from voxmmsd.plausibility.record import DOUBTFUL, FAIL, CheckResult, Limit, measured, not_applicable
from voxmmsd.plausibility.reference import prepare
from voxmmsd.plausibility.sequences import sequence_checks
from voxmmsd.plausibility.spatial import spatial_checks

PLAUSIBLE, IMPLAUSIBLE = "plausible", "implausible"
VERDICTS = (PLAUSIBLE, DOUBTFUL, IMPLAUSIBLE)
#: the warning kind of a doubtful or implausible verdict in report.json
KIND = "plausibility"
#: what to do with an implausible result: write it with a warning, or refuse (report only, no label map)
ON_IMPLAUSIBLE = ("warn", "refuse")
#: exit status of ``voxmmsd segment --on-implausible refuse`` when it refused a result
REFUSED_EXIT_CODE = 3


def refuses(verdict: str, on_implausible: str) -> bool:
    """True when a result with ``verdict`` must not be written as a label map under ``on_implausible``."""
    if on_implausible not in ON_IMPLAUSIBLE:
        raise ValueError(f"on_implausible must be one of {ON_IMPLAUSIBLE}, not {on_implausible!r}")
    return on_implausible == "refuse" and verdict == IMPLAUSIBLE
#: ``model_agreement``: share of the tumour the mirrored TTA passes disagree on
AGREEMENT_LIMIT = Limit("max", doubtful=0.25)
AGREEMENT_MEANING = "share of the tumour the mirrored test-time passes disagree on (only with TTA)"


@dataclass(frozen=True)
class Assessment:
    """The checks of one segmentation and their verdict."""

    verdict: str
    checks: Tuple[CheckResult, ...]
    seconds: float = 0.0

    def named(self, status: str) -> List[CheckResult]:
        return [c for c in self.checks if c.status == status]

    def check(self, name: str) -> CheckResult:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def summary(self) -> str:
        """One line: the verdict and the checks behind it, e.g. ``implausible: enhancement -1.2 (...)``."""
        worst = self.named(FAIL) or self.named(DOUBTFUL)
        if not worst:
            return f"{self.verdict}: every check passed"
        parts = [f"{c.name} {c.value:.3g} ({c.limit.describe()})" for c in worst if c.value is not None]
        return f"{self.verdict}: " + "; ".join(parts)

    def to_dict(self) -> Dict[str, Any]:
        return {"verdict": self.verdict, "failed": [c.name for c in self.named(FAIL)],
                "doubtful": [c.name for c in self.named(DOUBTFUL)], "summary": self.summary(),
                "checks": [c.to_dict() for c in self.checks], "seconds": round(self.seconds, 3)}


def verdict_of(checks: Sequence[CheckResult]) -> str:
    statuses = {c.status for c in checks}
    if FAIL in statuses:
        return IMPLAUSIBLE
    if DOUBTFUL in statuses:
        return DOUBTFUL
    return PLAUSIBLE


def model_agreement(uncertainty: Optional[Mapping[str, Any]]) -> CheckResult:
    value = (uncertainty or {}).get("tta_disagreement")
    if value is None:
        return not_applicable("model_agreement", "model", AGREEMENT_LIMIT, AGREEMENT_MEANING,
                              "measured only with test-time augmentation (--tta)")
    return measured("model_agreement", "model", float(value), AGREEMENT_LIMIT, AGREEMENT_MEANING)


def assess(images: Mapping[str, np.ndarray], label: np.ndarray, spacing_zyx: Sequence[float],
           brain_mask: Optional[np.ndarray] = None, lr_axis: Optional[int] = None,
           uncertainty: Optional[Mapping[str, Any]] = None) -> Assessment:
    """Every check of the segmentation ``label`` (internal labels, (z, y, x)) of the sequences
    ``images`` (key -> (z, y, x) array on the same grid of ``spacing_zyx`` mm) and the verdict."""
    t0 = time.perf_counter()
    ref = prepare(images, label, spacing_zyx, brain_mask, lr_axis)
    checks = sequence_checks(ref) + appearance_checks(ref) + spatial_checks(ref) + [model_agreement(uncertainty)]
    return Assessment(verdict_of(checks), tuple(checks), time.perf_counter() - t0)


def warning_for(assessment: Assessment) -> Optional[Dict[str, str]]:
    """The report.json warning ``{"kind": "plausibility", "message"}`` of a doubtful or implausible
    verdict (None when plausible)."""
    if assessment.verdict == PLAUSIBLE:
        return None
    failing = assessment.named(FAIL) or assessment.named(DOUBTFUL)
    reasons = "; ".join(c.meaning.split(":")[0] + f" ({c.name} = {c.value:.3g}, {c.limit.describe()})"
                        for c in failing if c.value is not None)
    if assessment.verdict == IMPLAUSIBLE:
        head = ("IMPLAUSIBLE segmentation: it does not look like a tumour on these images, or the images are not "
                "what they are said to be. Do not use it without checking the inputs and every slice")
    else:
        head = "Doubtful segmentation: some checks of the result against the images are borderline; review it"
    return {"kind": KIND, "message": f"{head}. Checks: {reasons}."}
