"""The one range check of a model package's values, run when a package loads (segment, verify, import, install).

``schema.json`` says what type each value has; this says which values make sense for brain MRI, so that an
absurd ``model.json`` is refused with the key, the value, the range and what it would have done, before any
image is read: a 0.05 mm working spacing (a brain of 4000^3 voxels: 112 GiB), a 1e-9 intensity percentile
(every brain voxel scaled to 1: the whole brain labelled tumour), 16^3 windows with 0.99 overlap (hundreds of
thousands of windows: no progress for hours). The same window rule checks ``--patch-size`` / ``--overlap``.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional, Sequence, Tuple

from voxmmsd.errors import ModelError

#: working voxel spacing (mm) a package may ask for
SPACING_MM = (0.5, 4.0)
#: intensity percentile of the ``percentile`` normalisation
PERCENTILE = (90.0, 100.0)
CROP_MARGIN = (0, 32)
NUM_CLASSES = (2, 16)
CHANNELS = (1, 1024)
#: window edge (voxels) and overlap of sliding-window inference
PATCH = (16, 512)
OVERLAP = (0.0, 0.9)
#: windows allowed over a :data:`REFERENCE_MM` cube (a large brain's crop): more means hours per case
MAX_WINDOWS = 4096
REFERENCE_MM = 200.0
#: the edge of a typical brain's crop (mm), for the memory a spacing implies
BRAIN_MM = 150.0
#: post-processing sizes (mL)
COMPONENT_ML = (0.0, 500.0)


def _out_of(value: float, bounds: Tuple[float, float]) -> bool:
    return not (bounds[0] <= value <= bounds[1])


def _refuse(where: Any, key: str, value: Any, bounds: Tuple[Any, Any], unit: str, effect: str,
            error: type = ModelError) -> Exception:
    return error(f"{where}: {key} = {value} is outside {bounds[0]:g}-{bounds[1]:g}{unit}: {effect}. Fix the value "
                 f"(or export the package again); the package was not used.")


def window_count(patch: Sequence[int], overlap: float, spacing_mm: Sequence[float],
                 extent_mm: float = REFERENCE_MM) -> int:
    """Sliding windows of ``patch`` voxels (z, y, x) with ``overlap`` over a cube of ``extent_mm`` at ``spacing_mm``."""
    total = 1
    for p, s in zip(patch, spacing_mm):
        length = max(int(math.ceil(extent_mm / float(s))), int(p))
        step = max(int(round(int(p) * (1.0 - float(overlap)))), 1)
        total *= int(math.ceil((length - int(p)) / step)) + 1
    return total


def check_window_plan(patch: Optional[Sequence[int]], overlap: float, spacing_mm: Optional[Sequence[float]],
                      where: Any, error: type = ModelError, keys: Tuple[str, str] = ("inference.patch_size",
                                                                                      "inference.overlap")) -> None:
    """Refuse a window size / overlap that cannot finish in reasonable time (see :data:`MAX_WINDOWS`)."""
    if _out_of(float(overlap), OVERLAP):
        raise _refuse(where, keys[1], overlap, OVERLAP, "", "windows would overlap so much that the brain is run "
                      "through the network dozens to thousands of times", error)
    if patch is None:
        return
    for p in patch:
        if _out_of(int(p), PATCH):
            raise _refuse(where, keys[0], list(patch), PATCH, " voxels", "a window that small or large is not "
                          "something the network was trained for", error)
    spacing = list(spacing_mm) if spacing_mm else [1.0, 1.0, 1.0]
    n = window_count(patch, overlap, spacing)
    if n > MAX_WINDOWS:
        raise error(f"{where}: {keys[0]} = {list(patch)} with {keys[1]} = {overlap} means about {n} windows over a "
                    f"{REFERENCE_MM:g} mm brain (at most {MAX_WINDOWS}): no progress for hours. Use larger windows "
                    f"or less overlap.")


def check_package_values(meta: Mapping[str, Any], where: Any) -> None:
    """Refuse ``model.json`` values (already schema-checked) outside the ranges above, naming key and effect."""
    pre = meta.get("preprocessing") or {}
    spacing = pre.get("spacing")
    if spacing:
        for s in spacing:
            if _out_of(float(s), SPACING_MM):
                voxels = 1.0
                for v in spacing:
                    voxels *= BRAIN_MM / max(float(v), 1e-6)
                raise _refuse(where, "preprocessing.spacing", list(spacing), SPACING_MM, " mm",
                              f"a {BRAIN_MM:g} mm brain would be resampled to about {voxels:.3g} voxels "
                              f"({voxels * 16 / 2 ** 30:.3g} GiB for the 4-channel input alone)")
    if str(pre.get("normalization", "percentile")) == "percentile" and "percentile" in pre:
        if _out_of(float(pre["percentile"]), PERCENTILE):
            raise _refuse(where, "preprocessing.percentile", pre["percentile"], PERCENTILE, "",
                          "intensities would be scaled by a value near the background, so the whole brain "
                          "saturates (and is labelled tumour)")
    if "crop_margin" in pre and _out_of(int(pre["crop_margin"]), CROP_MARGIN):
        raise _refuse(where, "preprocessing.crop_margin", pre["crop_margin"], CROP_MARGIN, " voxels",
                      "the crop around the brain would hold mostly background")
    net = meta.get("network") or {}
    if "num_classes" in net and _out_of(int(net["num_classes"]), NUM_CLASSES):
        raise _refuse(where, "network.num_classes", net["num_classes"], NUM_CLASSES, "",
                      "not a tumour segmentation network")
    for c in net.get("channels") or ():
        if _out_of(int(c), CHANNELS):
            raise _refuse(where, "network.channels", list(net["channels"]), CHANNELS, "",
                          "a network that size cannot run")
    inf = meta.get("inference") or {}
    check_window_plan(inf.get("patch_size"), float(inf.get("overlap", 0.5)), spacing, where)
    for key in ("min_et_ml", "min_component_ml", "min_et_component_ml"):
        if key in inf and _out_of(float(inf[key]), COMPONENT_ML):
            raise _refuse(where, f"inference.{key}", inf[key], COMPONENT_ML, " mL",
                          "post-processing would remove real tumour")
