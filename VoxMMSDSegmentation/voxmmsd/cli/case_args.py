"""The case arguments shared by ``inspect`` and ``segment``: a case folder and/or explicit paths per sequence."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_sequence_arguments(p: argparse.ArgumentParser) -> None:
    """Explicit per-sequence paths (they override discovery)."""
    for key, name in (("t1n", "T1 native"), ("t1c", "T1 post-contrast"), ("t2w", "T2-weighted"),
                      ("t2f", "T2-FLAIR")):
        p.add_argument(f"--{key}", type=Path, help=f"{name} image (overrides discovery)")
    p.add_argument("--label", type=Path, help="label map (overrides discovery)")


def resolve_case(args: argparse.Namespace, require_all: bool = True) -> Any:
    """The :class:`~voxmmsd.io.discovery.CaseFiles` the arguments name."""
    from voxmmsd.io.discovery import SEQUENCES, case_from_arguments

    return case_from_arguments(getattr(args, "case", None), {k: getattr(args, k, None) for k in SEQUENCES},
                               getattr(args, "label", None), require_all)
