#!/usr/bin/env python
"""Test variants of labelled cases: one sequence left out, a simulated thick-slice clinical exam, or
the pipeline shifts of the model protocol (voxmmsd.experiment.shifts).

  scripts/make_variants.py --cases DIR [DIR ...] --out /work/runs/variants [--thickness 5]
  scripts/make_variants.py --cases DIR --out /work/runs/shift --only thick,bias,zscore,uint8,ras

writes, per case folder given (or per case inside a data-set folder):
  OUT/no_t1n/<case>/ ... OUT/no_t2f/<case>/   links to every file but that sequence's
  OUT/thick5mm/<case>/                         each sequence re-acquired with 5 mm axial slices
                                               (box average over 5 slices, one sample each)
                                               and resampled back to its 1 mm grid (linear),
                                               like a clinical exam resampled to 1 mm; the
                                               reference label is linked unchanged.
  OUT/bias/<case>/     each sequence times its own smooth bias field (seeded by the case id)
  OUT/zscore/<case>/   float32, z-scored over the whole volume (background a negative constant)
  OUT/uint8/<case>/    rescaled to 0-255, 8 bits
  OUT/ras/<case>/      every file (label included) stored in RAS voxel order, same physical space
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import List

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("variants")


def thick_exam(path: Path, dest: Path, thickness: float) -> None:
    """``path`` re-sampled to ``thickness`` mm slices along z and back onto its own grid."""
    import numpy as np
    import SimpleITK as sitk
    from voxmmsd.finetune.data import thick_slices

    img = sitk.ReadImage(str(path))
    arr = sitk.GetArrayFromImage(img).astype(np.float32)  # (z, y, x)
    factor = thickness / float(img.GetSpacing()[2])
    out = thick_slices(arr, 0, factor)
    if np.issubdtype(sitk.GetArrayViewFromImage(img).dtype, np.integer):
        out = np.round(out)
    o = sitk.GetImageFromArray(out.astype(sitk.GetArrayViewFromImage(img).dtype))
    o.CopyInformation(img)
    sitk.WriteImage(o, str(dest), True)


def shifted_exam(path: Path, dest: Path, kind: str, seed: int) -> None:
    """``path`` with the pipeline shift ``kind`` (bias, zscore, uint8, ras) written to ``dest``."""
    import numpy as np
    import SimpleITK as sitk
    from voxmmsd.experiment.shifts import bias_shift, to_uint8, zscore_whole

    img = sitk.ReadImage(str(path))
    if kind == "ras":
        sitk.WriteImage(sitk.DICOMOrient(img, "RAS"), str(dest), True)
        return
    arr = sitk.GetArrayFromImage(img)
    if kind == "bias":
        out = bias_shift(arr, np.random.default_rng(seed))
    elif kind == "zscore":
        out = zscore_whole(arr)
    elif kind == "uint8":
        out = to_uint8(arr)
    else:
        raise ValueError(f"unknown shift {kind!r}")
    o = sitk.GetImageFromArray(out)
    o.CopyInformation(img)
    sitk.WriteImage(o, str(dest), True)


def main(argv: List[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", nargs="+", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--thickness", type=float, default=5.0)
    p.add_argument("--only", default="no_t1n,no_t1c,no_t2w,no_t2f,thick", help="variants to write")
    args = p.parse_args(argv)
    from voxmmsd.io.discovery import find_case, find_dataset

    cases = []
    for d in args.cases:
        try:
            cases.append(find_case(d))
        except Exception:  # a data-set folder: every case in it
            cases.extend(find_dataset(d, require_all=True, require_labels=True).cases)
    want = set(args.only.split(","))
    for case in cases:
        for seq in ("t1n", "t1c", "t2w", "t2f"):
            if f"no_{seq}" not in want:
                continue
            dest = args.out / f"no_{seq}" / case.case_id
            dest.mkdir(parents=True, exist_ok=True)
            for key, f in list(case.sequences.items()) + [("label", case.label)]:
                if key != seq and not (dest / Path(f).name).exists():
                    (dest / Path(f).name).symlink_to(Path(f).resolve())
        if "thick" in want:
            dest = args.out / f"thick{args.thickness:g}mm" / case.case_id
            dest.mkdir(parents=True, exist_ok=True)
            for f in case.sequences.values():
                if not (dest / Path(f).name).exists():
                    thick_exam(Path(f), dest / Path(f).name, args.thickness)
            if not (dest / Path(case.label).name).exists():
                (dest / Path(case.label).name).symlink_to(Path(case.label).resolve())
        for kind in ("bias", "zscore", "uint8", "ras"):
            if kind not in want:
                continue
            import zlib

            dest = args.out / kind / case.case_id
            dest.mkdir(parents=True, exist_ok=True)
            for i, f in enumerate(case.sequences.values()):
                if not (dest / Path(f).name).exists():
                    shifted_exam(Path(f), dest / Path(f).name, kind, zlib.crc32(case.case_id.encode()) + i)
            lab = dest / Path(case.label).name
            if not lab.exists():
                if kind == "ras":
                    shifted_exam(Path(case.label), lab, "ras", 0)
                else:
                    lab.symlink_to(Path(case.label).resolve())
        log.info("%s done", case.case_id)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "VoxMMSDSegmentation"))
    sys.exit(main(sys.argv[1:]))
