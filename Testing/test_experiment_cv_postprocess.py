"""The nested post-processing choice of ``voxmmsd experiment crossval postprocess`` runs the engine's own
post-processing step (:func:`voxmmsd.infer.postprocess.postprocess_label`, the predictor's), in seconds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from voxmmsd import synthetic
from voxmmsd.cli.main import main
from voxmmsd.errors import InputError
from voxmmsd.infer.postprocess import PostprocessLimits, postprocess_label

IDS = ["c0", "c1", "c2", "c3"]


def test_postprocess_label_applies_each_rule_in_order_with_notes() -> None:
    label = np.zeros((20, 20, 20), np.uint8)
    label[2:10, 2:10, 2:10] = 2  # the lesion
    label[4:6, 4:6, 4:6] = 3  # 8 voxels of ET
    label[17:19, 17:19, 17:19] = 2  # an island of 8 voxels, far from the lesion
    images = {s: np.ones(label.shape, np.float32) for s in ("t1n", "t1c", "t2w", "t2f")}
    same, notes = postprocess_label(label, images, (1.0, 1.0, 1.0), 0.001, PostprocessLimits())
    assert same is label and notes == []  # every rule off
    out, notes = postprocess_label(label, images, (1.0, 1.0, 1.0), 0.001, PostprocessLimits(min_et_ml=0.01))
    assert not np.any(out == 3) and np.count_nonzero(out == 1) == 8 and np.array_equal(label > 0, out > 0)
    assert notes == ["ET of 8 voxel(s), under 0.01 mL, relabelled NETC"]
    out, notes = postprocess_label(label, images, (1.0, 1.0, 1.0), 0.001, PostprocessLimits(min_component_ml=0.02))
    assert not out[17:19, 17:19, 17:19].any() and np.array_equal(out[:12], label[:12])
    assert len(notes) == 1 and notes[0].startswith("tumour components (limit 0.02 mL): removed 1 component(s)")


def _island_cases(root: Path) -> Path:
    """Four labelled cases; each case's prediction is its reference plus a 64-voxel island far from the tumour."""
    import SimpleITK as sitk
    from scipy import ndimage
    from voxmmsd.io.discovery import find_case

    data = root / "data"
    for i, c in enumerate(IDS):
        synthetic.write_case(data / c, c, seed=i, geometry=synthetic.default_geometry((40, 48, 36)))
        ref = sitk.ReadImage(str(find_case(data / c).label))
        arr = sitk.GetArrayFromImage(ref)
        far = ndimage.distance_transform_edt(arr == 0)
        far[:2], far[-2:], far[:, :2], far[:, -2:], far[:, :, :2], far[:, :, -2:] = 0, 0, 0, 0, 0, 0
        z, y, x = np.unravel_index(int(np.argmax(far)), far.shape)
        assert far[z, y, x] > 14  # the island lies well beyond 10 mm of the tumour
        pred = arr.copy()
        pred[z - 2:z + 2, y - 2:y + 2, x - 2:x + 2] = 2
        img = sitk.GetImageFromArray(pred)
        img.CopyInformation(ref)
        (root / "cv" / "arm" / "pred" / c).mkdir(parents=True)
        sitk.WriteImage(img, str(root / "cv" / "arm" / "pred" / c / "segmentation.nii.gz"))
    (root / "splits.json").write_text(json.dumps({"k": 2, "seed": 0, "folds": [["c0", "c1"], ["c2", "c3"]]}))
    return data


def test_nested_choice_removes_the_islands_and_writes_the_record(tmp_path: Path) -> None:
    data = _island_cases(tmp_path)
    cv = tmp_path / "cv"
    assert main(["experiment", "crossval", "postprocess", "--data", str(data), "--splits",
                 str(tmp_path / "splits.json"), "--out", str(cv), "--name", "arm", "--kind", "components",
                 "--limits", "0,0.1", "--write", "--exclude", "c3"]) == 0
    record = json.loads((cv / "arm" / "postprocess-components.json").read_text())
    assert record["chosen_ml_per_fold"] == [0.1, 0.1]  # chosen on the other fold, the island removed
    assert record["excluded"] == ["c3"] and sorted(record["per_case_applied"]) == ["c0", "c1", "c2"]
    wt = record["nested"]["WT"]["lesion_dice"]
    assert wt["applied"] == pytest.approx(1.0) and wt["without"] < 0.9
    assert record["mean_criterion_by_limit"]["0.1"] > record["mean_criterion_by_limit"]["0.0"]
    import SimpleITK as sitk
    from voxmmsd.io.discovery import find_case

    for c in ("c0", "c1", "c2"):  # the written prediction is the reference again
        out = sitk.GetArrayFromImage(sitk.ReadImage(str(cv / "arm" / "pred-pp-components" / c / "segmentation.nii.gz")))
        ref = sitk.GetArrayFromImage(sitk.ReadImage(str(find_case(data / c).label)))
        assert np.array_equal(out, ref)
    assert not (cv / "arm" / "pred-pp-components" / "c3").exists()


def test_a_missing_prediction_and_a_bad_kind_are_refused(tmp_path: Path) -> None:
    from voxmmsd.experiment.cv_postprocess import limits_for

    data = _island_cases(tmp_path)
    (tmp_path / "cv" / "arm" / "pred" / "c1" / "segmentation.nii.gz").unlink()
    assert main(["experiment", "crossval", "postprocess", "--data", str(data), "--splits",
                 str(tmp_path / "splits.json"), "--out", str(tmp_path / "cv"), "--name", "arm", "--kind", "et"]) == 1
    assert not (tmp_path / "cv" / "arm" / "postprocess.json").exists()
    with pytest.raises(InputError, match="Unknown post-processing kind"):
        limits_for("islands", 1.0)
    assert limits_for("et-components", 2.0) == PostprocessLimits(min_et_component_ml=2.0)
