"""What a case's files hold, read from their headers and voxels: grids, orientation, pixel types, value ranges,
label values, what discovery matched, and what resampling onto the reference grid will do. Writes nothing."""

from __future__ import annotations

from typing import Any, Dict

import numpy as np
import SimpleITK as sitk

from voxmmsd.io.discovery import LABEL, SEQUENCE_NAMES, SEQUENCES, CaseFiles
from voxmmsd.io.geometry import Geometry, orientation_code, overlap_fraction
from voxmmsd.io.reader import read_image


def describe_case(files: CaseFiles, reference: str = "t1c") -> Dict[str, Any]:
    """A JSON-able report: ``case``, ``reference``, ``missing`` and, per sequence (and ``label``), the file, its
    geometry and orientation, pixel type, value range, what discovery matched, and the planned resampling."""
    report: Dict[str, Any] = {"case": files.case_id, "reference": reference, "sequences": {}, "missing": files.missing}
    ref_geom = Geometry.of(read_image(files.sequences[reference], SEQUENCE_NAMES[reference])) \
        if reference in files.sequences else None
    items = [(s, files.sequences[s]) for s in SEQUENCES if s in files.sequences]
    if files.label is not None:
        items.append((LABEL, files.label))
    for key, path in items:
        img = read_image(path, "label map" if key == LABEL else SEQUENCE_NAMES[key], label=key == LABEL)
        g = Geometry.of(img)
        arr = sitk.GetArrayViewFromImage(img)
        entry: Dict[str, Any] = {"file": str(path), "geometry": g.to_dict(),
                                 "orientation": orientation_code(g.direction),
                                 "pixel_type": img.GetPixelIDTypeAsString(),
                                 "range": [float(arr.min()), float(arr.max())]}
        if key in files.matches:
            entry["matched"] = files.matches[key]
        if key == LABEL:
            entry["values"] = [int(v) for v in np.unique(arr)]
        if ref_geom is not None:
            if g.same_as(ref_geom):
                entry["resampling"] = "none (on the reference grid)"
            else:
                how = "nearest neighbour" if key == LABEL else \
                    "linear, after rigid registration (segment --register auto)"
                entry["resampling"] = (f"{how} onto the reference grid; physical overlap "
                                       f"{overlap_fraction(ref_geom, g):.0%}")
        report["sequences"][key] = entry
    return report
