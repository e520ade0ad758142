"""Another model for a case that lacks a sequence the package's own network handles badly.

A package may name, per missing sequence, a model that cross-validated better without that
sequence (``inference.fallback_when_missing``, e.g. ``{"t2f": "voxmmsd-brats-default@1.0.0"}``
for the default model 2.1.0: docs/model-card.md, table C). The choice is a pure function of
the package and the sequences present; the caller resolves the model, says so in the
report's warnings, and can switch it off (``voxmmsd segment --no-fallback``).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional, Sequence, Tuple

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


def _spec(package: Any) -> str:
    return f"{package.id}@{package.version}"


def fallback_warning(own: Any, other: Any, missing: str) -> str:
    """The report's warning when ``other`` (a package) segments a case instead of ``own``."""
    name = NAMES.get(missing, missing)
    return (f"{name} is missing: segmented with {_spec(other)} instead of {_spec(own)}, because {_spec(other)} "
            f"cross-validated better without {name} (see the model card); --no-fallback uses {_spec(own)} anyway.")


def switch_package(package: Any, present: Sequence[str], resolve: Callable[[str], Any],
                   enabled: bool = True) -> Tuple[Any, Optional[str]]:
    """``(package to use, warning or None)`` for a case with the sequences ``present``;
    ``resolve`` turns a model spec into a package (or a predictor: anything with ``.package``)."""
    rule = fallback_model(package.inference, present) if enabled else None
    if rule is None:
        return package, None
    other = resolve(rule[0])
    return other, fallback_warning(package, getattr(other, "package", other), rule[1])
