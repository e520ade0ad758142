"""Assign the four input sequences from the names of loaded volumes (user-editable afterwards)."""

from __future__ import annotations

import re
from typing import Dict, Iterable, List, Optional, Tuple

#: sequence key -> name patterns, most specific first; matched on lower-case tokens of the name
PATTERNS: Dict[str, Tuple[str, ...]] = {
    "t1c": (r"t1c", r"t1ce", r"t1gd", r"t1[-_ ]?gd", r"t1[-_ ]?post", r"t1[-_ ]?contrast", r"gd", r"contrast",
            r"post", r"gadolinium"),
    "t2f": (r"t2f", r"flair", r"t2[-_ ]?flair"),
    "t2w": (r"t2w", r"t2"),
    "t1n": (r"t1n", r"t1[-_ ]?native", r"t1[-_ ]?pre", r"t1w", r"t1", r"native"),
}
#: the order in which sequences claim volumes: specific names before the generic "t1"/"t2"
CLAIM_ORDER = ("t1c", "t2f", "t2w", "t1n")


def _tokens(name: str) -> str:
    """Lower-case name with separators normalised, padded so that patterns match whole tokens."""
    return " " + re.sub(r"[^a-z0-9]+", " ", name.lower()).strip() + " "


def match_score(name: str, key: str) -> Optional[int]:
    """How well a volume name fits sequence ``key``: 0 = best pattern; None = no match.

    A pattern must match a whole token, or a token prefix followed by a separator, so
    that ``t1`` does not match ``t1ce`` and ``t2`` does not match ``t2flair``.
    """
    text = _tokens(name)
    for rank, pattern in enumerate(PATTERNS[key]):
        if re.search(r"(?<=[ ])" + pattern.replace("[-_ ]", "[ ]") + r"(?=[ ])", text):
            return rank
    return None


def assign_inputs(names: Iterable[str]) -> Dict[str, Optional[str]]:
    """Map each sequence key to one of ``names`` (each name used at most once), or None.

    Names are claimed in :data:`CLAIM_ORDER`; for each sequence the best-ranked pattern
    wins, ties going to the earlier name (the order volumes were loaded).
    """
    pool: List[str] = list(names)
    out: Dict[str, Optional[str]] = {k: None for k in ("t1n", "t1c", "t2w", "t2f")}
    for key in CLAIM_ORDER:
        best: Optional[Tuple[int, int, str]] = None
        for index, name in enumerate(pool):
            score = match_score(name, key)
            if score is not None and (best is None or (score, index) < best[:2]):
                best = (score, index, name)
        if best is not None:
            out[key] = best[2]
            pool.remove(best[2])
    return out
