"""``voxmmsd inspect CASE``: the sequences found, their grids, and what resampling will do."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, Dict

log = logging.getLogger(__name__)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("inspect", help="show the sequences of a case, their grids and the planned resampling",
                       description="Find the four sequences of a case folder (or take explicit paths), "
                                   "read their headers and report grids, orientation, intensity ranges and "
                                   "what resampling onto the reference grid will do. Writes nothing.")
    p.add_argument("case", nargs="?", type=Path, help="case folder")
    add_sequence_arguments(p)
    p.add_argument("--reference", default="t1c", choices=("t1n", "t1c", "t2w", "t2f"),
                   help="sequence whose grid is the reference (default: t1c)")
    p.add_argument("--json", action="store_true", help="print a JSON report instead of text")
    p.set_defaults(func=run)


def add_sequence_arguments(p: argparse.ArgumentParser) -> None:
    """Explicit per-sequence paths (shared by inspect and segment)."""
    for key, name in (("t1n", "T1 native"), ("t1c", "T1 post-contrast"), ("t2w", "T2-weighted"),
                      ("t2f", "T2-FLAIR")):
        p.add_argument(f"--{key}", type=Path, help=f"{name} image (overrides discovery)")
    p.add_argument("--label", type=Path, help="label map (overrides discovery)")


def resolve_case(args: argparse.Namespace, require_all: bool = True):  # -> CaseFiles
    from voxmmsd.errors import InputError
    from voxmmsd.io.discovery import SEQUENCES, case_from_paths, find_case

    explicit = {k: getattr(args, k, None) for k in SEQUENCES}
    if any(explicit.values()):
        base = find_case(args.case, require_all=False) if getattr(args, "case", None) else None
        paths = dict(base.sequences) if base else {}
        paths.update({k: v for k, v in explicit.items() if v is not None})
        label = getattr(args, "label", None) or (base.label if base else None)
        return case_from_paths(paths, base.case_id if base else None, label)
    if getattr(args, "case", None) is None:
        raise InputError("Give a case folder, or the images with --t1n --t1c --t2w --t2f.")
    return find_case(args.case, require_all=require_all)


def describe_case(files: Any, reference: str) -> Dict[str, Any]:
    import numpy as np
    import SimpleITK as sitk

    from voxmmsd.io.discovery import SEQUENCE_NAMES, SEQUENCES
    from voxmmsd.io.geometry import Geometry, orientation_code, overlap_fraction
    from voxmmsd.io.reader import read_image

    report: Dict[str, Any] = {"case": files.case_id, "reference": reference, "sequences": {}, "missing": files.missing}
    ref_geom = Geometry.of(read_image(files.sequences[reference], SEQUENCE_NAMES[reference])) \
        if reference in files.sequences else None
    items = [(s, files.sequences[s]) for s in SEQUENCES if s in files.sequences]
    if files.label is not None:
        items.append(("label", files.label))
    for key, path in items:
        img = read_image(path, "label map" if key == "label" else SEQUENCE_NAMES[key])
        g = Geometry.of(img)
        arr = sitk.GetArrayViewFromImage(img)
        entry: Dict[str, Any] = {"file": str(path), "geometry": g.to_dict(),
                                 "orientation": orientation_code(g.direction),
                                 "pixel_type": img.GetPixelIDTypeAsString(),
                                 "range": [float(arr.min()), float(arr.max())]}
        if key == "label":
            entry["values"] = [int(v) for v in np.unique(arr)]
        if ref_geom is not None:
            if g.same_as(ref_geom):
                entry["resampling"] = "none (on the reference grid)"
            else:
                how = "nearest neighbour" if key == "label" else "linear"
                entry["resampling"] = (f"{how} onto the reference grid; physical overlap "
                                       f"{overlap_fraction(ref_geom, g):.0%}")
        report["sequences"][key] = entry
    return report


def run(args: argparse.Namespace) -> int:
    files = resolve_case(args, require_all=False)
    report = describe_case(files, args.reference)
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    from voxmmsd.io.discovery import SEQUENCE_NAMES
    from voxmmsd.io.geometry import Geometry

    out = [f"Case {report['case']} (reference grid: {SEQUENCE_NAMES[args.reference]})"]
    for key, e in report["sequences"].items():
        name = "Label map" if key == "label" else SEQUENCE_NAMES[key]
        g = Geometry.from_dict(e["geometry"])
        out.append(f"  {name:28s} {Path(e['file']).name}")
        out.append(f"      {g.describe()}; {e['pixel_type']}, values {e['range'][0]:g}..{e['range'][1]:g}")
        if "values" in e:
            out.append(f"      label values {e['values']}")
        if "resampling" in e:
            out.append(f"      resampling: {e['resampling']}")
    for s in report["missing"]:
        out.append(f"  {SEQUENCE_NAMES[s]:28s} MISSING")
    sys.stdout.write("\n".join(out) + "\n")
    return 0
