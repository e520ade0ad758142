"""Raw clinical exams for the tests: a synthetic head around a phantom brain, thick oblique slices, one grid and a
small head motion per series, clinical file names (:func:`voxmmsd.rawexam.write_raw_exam`)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import SimpleITK as sitk
from voxmmsd import rawexam, synthetic

#: a quick clinical protocol: 3-D T1 (1.5 mm), thick-slice T1c / T2 / FLAIR on their own tilted grids, head motion
PROTOCOL = {
    "t1n": rawexam.Acquisition("MPRAGE", (1.5, 1.5, 1.5), (0.0, 0.0, 0.0), (2.0, 0.0, -1.5), (1.5, -2.0, 1.0)),
    "t1c": rawexam.Acquisition("T1 POST GAD", (1.2, 1.2, 5.0), (12.0, 0.0, 0.0)),
    "t2w": rawexam.Acquisition("T2 TSE", (1.2, 1.2, 5.0), (8.0, 4.0, 0.0), (-1.5, 1.0, 0.0), (-1.0, 1.5, 2.0)),
    "t2f": rawexam.Acquisition("fla", (1.2, 1.2, 5.5), (10.0, 0.0, 3.0), (0.0, -2.0, 1.0), (2.0, 1.0, -1.5)),
}
#: a human-sized phantom brain (deepbet needs something brain-sized), tumour off-centre
PHANTOM = replace(synthetic.Phantom(), brain_radii=(62.0, 75.0, 55.0), tumour_offset=(25.0, -15.0, 12.0),
                  core_radius=8.0, rim_radius=13.0, edema_radius=24.0, ventricle_radii=(8.0, 18.0, 8.0))


def write_raw_exam(root: Path, seed: int = 1) -> Path:
    grid = synthetic.default_geometry((84, 100, 74), spacing=(1.5, 1.5, 1.5))
    images = {s: grid.apply(sitk.GetImageFromArray(synthetic.sample_sequence(PHANTOM, grid, s, seed=seed)))
              for s in synthetic.SEQUENCES}
    label = grid.apply(sitk.GetImageFromArray(synthetic.sample_label(PHANTOM, grid)))
    rawexam.write_raw_exam(root / "exam", images, label, PROTOCOL, prefix="patient", seed=seed,
                           truth_dir=root / "truth")
    return root / "exam"
