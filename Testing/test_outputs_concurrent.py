"""The outputs of a case written at the same time (voxmmsd.infer.outputs): the same files as one after
another, and a failure in one writer leaves nothing half-written."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from voxmmsd import synthetic
from voxmmsd.errors import InputError
from voxmmsd.infer import outputs
from voxmmsd.infer.predictor import Prediction
from voxmmsd.io import parallel


def _prediction() -> Prediction:
    geom = synthetic.default_geometry((24, 28, 20))
    rng = np.random.default_rng(0)
    label = np.zeros(geom.shape, np.uint8)
    label[6:14, 8:18, 6:16] = rng.integers(0, 4, (8, 10, 10))
    mask = np.zeros(geom.shape, np.uint8)
    mask[2:-2, 2:-2, 2:-2] = 1
    picture = rng.integers(0, 255, (30, 40, 3)).astype(np.uint8)
    return Prediction("c1", label, geom, rng.random(geom.shape).astype(np.float32), {"WT": 1.0},
                      brain_mask=mask, exam_picture=picture)


def _contents(folder: Path) -> dict:
    out = {}
    for p in sorted(folder.iterdir()):
        if p.name.endswith(".nii.gz") or p.name.endswith(".nrrd"):
            img = sitk.ReadImage(str(p))
            out[p.name] = (sitk.GetArrayFromImage(img).tobytes(), img.GetOrigin(), img.GetSpacing())
        elif p.name == outputs.REPORT:
            rep = json.loads(p.read_text())
            out[p.name] = {k: v for k, v in rep.items() if k not in ("created", "timings_s", "outputs")}
        else:
            out[p.name] = p.read_bytes()
    return out


def test_concurrent_equals_sequential(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = {"id": "m", "version": "1"}
    a = outputs.write_outputs(_prediction(), tmp_path / "par", model)
    real = parallel.map_ordered
    monkeypatch.setattr(outputs, "map_ordered", lambda fn, items, workers=None, name="": real(fn, items, 1))
    b = outputs.write_outputs(_prediction(), tmp_path / "seq", model)
    assert set(a) == set(b) == {"segmentation", "seg_nrrd", "qc", "brain_mask", "registration_qc", "report"}
    assert _contents(tmp_path / "par") == _contents(tmp_path / "seq")


def test_one_writer_failing_leaves_the_previous_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = {"id": "m", "version": "1"}
    outputs.write_outputs(_prediction(), tmp_path, model)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(outputs, "write_qc_png", full)
    with pytest.raises(InputError, match="disk is full"):
        outputs.write_outputs(_prediction(), tmp_path, model)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no staging folder, nothing replaced
