"""``voxmmsd evaluate``: placeholder until its issue lands."""

from __future__ import annotations

import argparse
from typing import Any

from voxmmsd.errors import VoxMMSDError


def add_parser(sub: Any) -> None:
    p = sub.add_parser("evaluate", help="(evaluate: not available in this version)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise VoxMMSDError("'voxmmsd evaluate' is not available in this version yet.")
