"""Case and folder evaluation: regions, layouts, conventions, bad input, and the CLI as a process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from voxmmsd.errors import InputError, LabelError
from voxmmsd.io.geometry import Geometry
from voxmmsd.io.labels import from_internal
from voxmmsd.io.writer import write_label_nifti
from voxmmsd.metrics.evaluate import EvaluationConfig, evaluate_case, evaluate_folders
from voxmmsd.metrics.report import CASE_COLUMNS, format_summary, read_csv, summarise, write_csv


def ref_label(folder: Path, case_id: str):
    img = sitk.ReadImage(str(folder / case_id / f"{case_id}-seg.nii.gz"))
    return sitk.GetArrayFromImage(img), Geometry.of(img)


def test_evaluate_case_regions_and_values():
    ref = np.zeros((20, 20, 20), np.uint8)
    ref[5:15, 5:15, 5:15] = 2
    ref[8:12, 8:12, 8:12] = 3
    ref[9:11, 9:11, 9:11] = 1
    out = evaluate_case(ref.copy(), ref, (1.0, 1.0, 1.0))
    assert list(out) == ["WT", "TC", "ET", "NETC", "SNFH"]  # RC absent in both: not reported
    assert all(out[r]["dice"] == 1.0 and out[r]["hd95_mm"] == 0.0 for r in out)
    assert out["WT"]["volume_ref_ml"] == pytest.approx(1.0)
    assert np.isnan(out["NETC"]["lesion_dice"]) and out["ET"]["lesion_dice"] == 1.0
    pred = ref.copy()
    pred[pred == 3] = 4  # ET called resection cavity
    out = evaluate_case(pred, ref, (1.0, 1.0, 2.0))
    assert out["ET"]["dice"] == 0.0 and out["ET"]["hd95_mm"] == 373.0 and out["ET"]["lesion_dice"] == 0.0
    assert "RC" in out and out["RC"]["volume_pred_ml"] == pytest.approx(2 * 56 / 1000)
    assert out["WT"]["dice"] < 1.0 and out["SNFH"]["dice"] == 1.0


def _write_predictions(ref_root: Path, pred_root: Path, layouts, convention="legacy", damage=None):
    for i, cid in enumerate(sorted(p.name for p in ref_root.iterdir())):
        arr, geom = ref_label(ref_root, cid)
        if damage is not None and i == 0:
            arr = damage(arr)
        arr = from_internal(arr, convention)
        name = layouts[i % len(layouts)].format(id=cid)
        write_label_nifti(arr, geom, pred_root / name)


def test_folders_all_layouts_and_conventions(synthetic_dataset: Path, tmp_path: Path):
    pred = tmp_path / "pred"

    def shrink(a):
        a = a.copy()
        a[a == 2] = 0
        return a

    _write_predictions(synthetic_dataset, pred, ["{id}.nii.gz", "{id}_seg.nii.gz", "{id}/segmentation.nii.gz",
                                                 "{id}-seg.nii.gz"], damage=shrink)
    (pred / "case002" / "report.json").write_text("{}")
    result = evaluate_folders(pred, synthetic_dataset)
    assert result.cases == ["case000", "case001", "case002", "case003"]
    assert {c["pred"] for c in result.conventions.values()} == {"legacy"}
    by = {(r["case_id"], r["region"]): r for r in result.rows}
    assert by[("case001", "WT")]["dice"] == 1.0 and by[("case003", "ET")]["lesion_hd95_mm"] == 0.0
    assert by[("case000", "SNFH")]["dice"] == 0.0 and by[("case000", "TC")]["dice"] == 1.0
    assert by[("case000", "WT")]["dice"] < 1.0
    summary = summarise(result.rows)
    mean_wt = next(r for r in summary if r["region"] == "WT" and r["statistic"] == "mean")
    assert mean_wt["dice"] == pytest.approx(np.mean([by[(c, "WT")]["dice"] for c in result.cases]))
    assert "WT" in format_summary(summary)
    path = write_csv(tmp_path / "out" / "per_case.csv", result.rows, CASE_COLUMNS)
    back = read_csv(path)
    assert len(back) == len(result.rows) and back[0]["lesion_dice"] != "" and back[3]["lesion_dice"] == ""


def test_grids_differ_names_both_files(synthetic_dataset: Path, tmp_path: Path):
    pred = tmp_path / "pred"
    _write_predictions(synthetic_dataset, pred, ["{id}.nii.gz"])
    arr, geom = ref_label(synthetic_dataset, "case001")
    moved = Geometry(geom.size, (1.0, 1.0, 1.5), geom.origin, geom.direction)
    write_label_nifti(arr, moved, pred / "case001.nii.gz")
    with pytest.raises(InputError, match="different grids") as err:
        evaluate_folders(pred, synthetic_dataset)
    assert str(pred / "case001.nii.gz") in str(err.value) and "case001-seg.nii.gz" in str(err.value)


def test_labels_outside_the_convention(synthetic_dataset: Path, tmp_path: Path):
    pred = tmp_path / "pred"
    _write_predictions(synthetic_dataset, pred, ["{id}.nii.gz"], convention="brats2023")
    with pytest.raises(LabelError, match="legacy"):  # value 3 is not legacy BraTS
        evaluate_folders(pred, synthetic_dataset, pred_convention="legacy")
    arr, geom = ref_label(synthetic_dataset, "case002")
    arr[0, 0, 0] = 7
    write_label_nifti(arr, geom, pred / "case002.nii.gz")
    with pytest.raises(LabelError, match="case002"):
        evaluate_folders(pred, synthetic_dataset)


def test_missing_and_extra_cases(synthetic_dataset: Path, tmp_path: Path):
    pred = tmp_path / "pred"
    _write_predictions(synthetic_dataset, pred, ["{id}.nii.gz"])
    (pred / "case003.nii.gz").unlink()
    write_label_nifti(*ref_label(synthetic_dataset, "case000"), pred / "stranger.nii.gz")
    with pytest.raises(InputError, match="case003.*--missing"):
        evaluate_folders(pred, synthetic_dataset)
    skipped = evaluate_folders(pred, synthetic_dataset, config=EvaluationConfig(missing="skip"))
    assert skipped.cases == ["case000", "case001", "case002"]
    assert any("stranger" in w for w in skipped.warnings)
    worst = evaluate_folders(pred, synthetic_dataset, config=EvaluationConfig(missing="worst"))
    rows = [r for r in worst.rows if r["case_id"] == "case003"]
    assert rows and all(r["status"] == "missing prediction" and r["dice"] == 0.0 for r in rows)
    with pytest.raises(InputError, match="not found"):
        evaluate_folders(pred, tmp_path / "nothing_here")
    other = tmp_path / "other"
    write_label_nifti(*ref_label(synthetic_dataset, "case000"), other / "zzz.nii.gz")
    with pytest.raises(InputError, match="No case"):
        evaluate_folders(other, synthetic_dataset)


def test_cli_writes_tables_and_reports_bad_input(synthetic_dataset: Path, tmp_path: Path):
    pred = tmp_path / "pred"
    _write_predictions(synthetic_dataset, pred, ["{id}/segmentation.nii.gz"], convention="brats2023")
    out = tmp_path / "eval"
    cmd = [sys.executable, "-m", "voxmmsd", "evaluate", "--pred", str(pred), "--ref", str(synthetic_dataset),
           "--out", str(out), "--labels-ref", "brats2023"]
    done = subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8", timeout=120)
    assert done.returncode == 0, done.stderr
    assert "4 case(s) evaluated" in done.stdout and "WT" in done.stdout
    rows = read_csv(out / "per_case.csv")
    assert {r["case_id"] for r in rows} == {"case000", "case001", "case002", "case003"}
    assert all(float(r["dice"]) == 1.0 for r in rows)
    summary = read_csv(out / "summary.csv")
    assert {r["statistic"] for r in summary} >= {"mean", "std", "median"}
    assert (out / "evaluation.json").is_file()
    bad = subprocess.run(cmd[:-1] + ["legacy"], capture_output=True, text=True, encoding="utf-8", timeout=120)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr and "legacy" in bad.stderr


def test_far_false_positive_volume_counts_only_tumour_far_from_the_reference():
    import numpy as np
    from voxmmsd.metrics.evaluate import evaluate_case
    from voxmmsd.metrics.false_positive import fp_volume_outside

    ref = np.zeros((40, 40, 60), np.uint8)
    ref[15:25, 15:25, 5:15] = 2
    pred = ref.copy()
    pred[15:25, 15:25, 15:20] = 2  # 5 voxels past the edge: within 10 mm, a boundary error
    assert fp_volume_outside(pred > 0, ref > 0, (1, 1, 1)) == 0.0
    pred[10:20, 10:20, 40:50] = 3  # 1,000 voxels 25 mm away: "tumour in the other hemisphere"
    assert fp_volume_outside(pred > 0, ref > 0, (1, 1, 1)) == 1.0
    # at 2 mm in x the same voxels are farther; the margin is in millimetres
    assert fp_volume_outside(pred > 0, ref > 0, (2.0, 1, 1)) > 1.0
    scores = evaluate_case(pred, ref, (1, 1, 1))
    assert scores["WT"]["fp_far_ml"] == 1.0 and scores["ET"]["fp_far_ml"] == 1.0
    assert fp_volume_outside(pred > 0, np.zeros_like(ref, bool), (1, 1, 1)) == float((pred > 0).sum()) / 1000


def test_an_empty_prediction_is_scored_not_refused(synthetic_dataset: Path, tmp_path: Path):
    """A model that finds no tumour writes an all-zero label map: that is an answer (Dice 0 where the
    reference has tumour), not an unreadable file; it made a whole cross-validation's scoring fail."""
    pred = tmp_path / "pred"
    _write_predictions(synthetic_dataset, pred, ["{id}.nii.gz"], damage=lambda a: np.zeros_like(a))
    res = evaluate_folders(pred, synthetic_dataset)
    first = sorted(p.name for p in synthetic_dataset.iterdir())[0]
    rows = {r["region"]: r for r in res.rows if r["case_id"] == first}
    assert rows["WT"]["status"] == "ok" and rows["WT"]["dice"] == 0.0 and rows["WT"]["volume_pred_ml"] == 0.0
    others = [r for r in res.rows if r["case_id"] != first and r["region"] == "WT"]
    assert others and all(r["dice"] == 1.0 for r in others)
