"""``voxmmsd inspect CASE``: the sequences found (and why), their grids, and what resampling will do."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, Dict, List

from voxmmsd.cli.case_args import add_sequence_arguments, resolve_case
from voxmmsd.sequences import SEQUENCES

log = logging.getLogger(__name__)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("inspect", help="show the sequences of a case, their grids and the planned resampling",
                       description="Find the four sequences of a case folder (or take explicit paths), "
                                   "read their headers and report grids, orientation, intensity ranges and "
                                   "what resampling onto the reference grid will do. Writes nothing.")
    p.add_argument("case", nargs="?", type=Path, help="case folder")
    add_sequence_arguments(p)
    p.add_argument("--reference", default="t1c", choices=SEQUENCES,
                   help="sequence whose grid is the reference (default: t1c)")
    p.add_argument("--json", action="store_true", help="print a JSON report instead of text")
    p.set_defaults(func=run)


def format_report(report: Dict[str, Any]) -> str:
    """The text form of :func:`voxmmsd.io.describe.describe_case`'s report."""
    from voxmmsd.io.discovery import SEQUENCE_NAMES
    from voxmmsd.io.geometry import Geometry

    out: List[str] = [f"Case {report['case']} (reference grid: {SEQUENCE_NAMES[report['reference']]})"]
    for key, e in report["sequences"].items():
        name = "Label map" if key == "label" else SEQUENCE_NAMES[key]
        g = Geometry.from_dict(e["geometry"])
        out.append(f"  {name:28s} {Path(e['file']).name}")
        if "matched" in e:
            out.append(f"      matched: {e['matched']}")
        out.append(f"      {g.describe()}; {e['pixel_type']}, values {e['range'][0]:g}..{e['range'][1]:g}")
        if "values" in e:
            out.append(f"      label values {e['values']}")
        if "resampling" in e:
            out.append(f"      resampling: {e['resampling']}")
    for s in report["missing"]:
        out.append(f"  {SEQUENCE_NAMES[s]:28s} MISSING")
    return "\n".join(out) + "\n"


def run(args: argparse.Namespace) -> int:
    from voxmmsd.io.describe import describe_case

    report = describe_case(resolve_case(args, require_all=False), args.reference)
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(format_report(report))
    return 0
