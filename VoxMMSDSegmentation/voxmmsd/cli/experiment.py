"""``voxmmsd experiment``: placeholder until its issue lands."""

from __future__ import annotations

import argparse
from typing import Any

from voxmmsd.errors import VoxMMSDError


def add_parser(sub: Any) -> None:
    p = sub.add_parser("experiment", help="(experiment: not available in this version)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise VoxMMSDError("'voxmmsd experiment' is not available in this version yet.")
