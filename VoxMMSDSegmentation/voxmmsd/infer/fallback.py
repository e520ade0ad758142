"""Another model for a case that lacks a sequence the package's own network handles badly.

A package may name, per missing sequence, a model that cross-validated better without that
sequence (``inference.fallback_when_missing``, e.g. ``{"t2f": "voxmmsd-brats-default@1.0.0"}``
for the default model 2.1.0: docs/model-card.md, table C). The choice is a pure function of
the package and the sequences present; the caller resolves the model, says so in the
report's warnings, and can switch it off (``voxmmsd segment --no-fallback``).
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from voxmmsd.io.discovery import SEQUENCES

NAMES = {"t1n": "T1n", "t1c": "T1c", "t2w": "T2w", "t2f": "FLAIR"}


def fallback_model(inference: Mapping[str, Any], present: Sequence[str]) -> Optional[Tuple[str, str]]:
    """``(model spec, missing sequence)`` for the first missing sequence (T1n, T1c, T2w, FLAIR order)
    that ``inference["fallback_when_missing"]`` names a model for; None when no rule applies."""
    rules = inference.get("fallback_when_missing") or {}
    for seq in SEQUENCES:
        if seq not in present and rules.get(seq):
            return str(rules[seq]), seq
    return None


def fallback_warning(own: str, other: str, missing: str) -> str:
    return (f"{NAMES.get(missing, missing)} is missing: segmented with {other} instead of {own}, because {other} "
            f"cross-validated better without {NAMES.get(missing, missing)} (see the model card); "
            f"--no-fallback uses {own} anyway.")


class Chooser:
    """The predictor for each case: the main one, or (made once, on first need) a fallback's."""

    def __init__(self, main: Any, make: Any, enabled: bool = True) -> None:
        self.main, self._make, self.enabled = main, make, enabled
        self._others: Dict[str, Any] = {}

    def for_case(self, present: Sequence[str]) -> Tuple[Any, Optional[str]]:
        """``(predictor, warning or None)`` for a case with the sequences ``present``."""
        rule = fallback_model(self.main.package.inference, present) if self.enabled else None
        if rule is None:
            return self.main, None
        spec, missing = rule
        if spec not in self._others:
            self._others[spec] = self._make(spec)
        other = self._others[spec]
        own = f"{self.main.package.id}@{self.main.package.version}"
        return other, fallback_warning(own, f"{other.package.id}@{other.package.version}", missing)
