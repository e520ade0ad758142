"""Uncertainty a user can see: numbers in report.json, structured warnings, the QC picture's title."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from support.packages import build_tiny_package
from voxmmsd import synthetic
from voxmmsd.infer import uncertainty
from voxmmsd.infer.outputs import write_outputs
from voxmmsd.infer.predictor import Predictor, PredictorConfig
from voxmmsd.io.discovery import find_case
from voxmmsd.io.reader import load_case
from voxmmsd.models.package import load_package


def test_tta_disagreement_counts_voxels_some_passes_miss() -> None:
    a = np.zeros((4, 4, 4), bool)
    a[:2] = True  # 32 voxels
    b = a.copy()
    b[0] = False  # 16 of them dropped by one pass
    assert uncertainty.tta_disagreement([a, a]) == 0.0
    assert uncertainty.tta_disagreement([a, b]) == pytest.approx(0.5)
    assert uncertainty.tta_disagreement([a]) is None
    assert uncertainty.tta_disagreement([np.zeros_like(a)] * 3) == 0.0


def test_summary_and_warnings_follow_the_limits() -> None:
    conf = np.full((3, 3, 3), 0.9, np.float32)
    tumour = np.zeros_like(conf, bool)
    tumour[0] = True
    conf[0, 0] = 0.1  # 3 of the 9 tumour voxels unsure
    rec = uncertainty.summarise(conf, tumour, 0.1)
    assert rec["tumour_voxels"] == 9 and rec["low_confidence_fraction"] == pytest.approx(1 / 3, abs=1e-3)
    assert rec["mean_confidence"] == pytest.approx((6 * 0.9 + 3 * 0.1) / 9, abs=1e-3)
    assert uncertainty.warnings_for(rec) == []  # 33 % <= 35 %
    conf[0, 1] = 0.1
    warned = uncertainty.warnings_for(uncertainty.summarise(conf, tumour, 0.4))
    assert [w["kind"] for w in warned] == ["uncertainty", "uncertainty"]
    assert "67%" in warned[0]["message"] and "40%" in warned[1]["message"]
    empty = uncertainty.summarise(conf, np.zeros_like(tumour), None)
    assert empty["mean_confidence"] is None
    assert [w["kind"] for w in uncertainty.warnings_for(empty)] == ["no_tumour"]


def test_report_and_qc_carry_the_uncertainty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    pkg = load_package(build_tiny_package(tmp_path / "pkg", export_onnx=False))
    synthetic.write_case(tmp_path / "case", "unc", seed=5, geometry=synthetic.default_geometry((32, 36, 28)))
    case = load_case(find_case(tmp_path / "case"), with_label=False)
    pred = Predictor(pkg, PredictorConfig(backend="torch", precision="fp32", tta=True)).predict(case)
    u = pred.uncertainty
    assert u["tumour_voxels"] > 0 and 0.0 <= u["mean_confidence"] <= 1.0
    assert u["tta_disagreement"] is not None and 0.0 <= u["tta_disagreement"] <= 1.0
    monkeypatch.setattr(uncertainty, "MAX_LOW_FRACTION", -1.0)  # every tumour is "too uncertain" now
    pred = Predictor(pkg, PredictorConfig(backend="torch", precision="fp32")).predict(case)
    # the uncertainty alert; the plausibility checks may add theirs (a tiny random network's result)
    assert [a["kind"] for a in pred.alerts if a["kind"] != "plausibility"] == ["uncertainty"]
    assert pred.alerts[0]["kind"] == "uncertainty" and pred.alerts[0]["message"] in pred.warnings
    outputs = write_outputs(pred, tmp_path / "out", {"id": "tiny", "version": "0.1"}, pkg.label_table)
    report = json.loads(Path(outputs["report"]).read_text())
    assert {"kind": "uncertainty", "message": pred.alerts[0]["message"]} in report["warnings"]
    assert all(set(w) == {"kind", "message"} for w in report["warnings"])
    assert report["uncertainty"]["low_confidence_fraction"] == u["low_confidence_fraction"] or \
        report["uncertainty"]["tta_disagreement"] is None
    with Image.open(outputs["qc"]) as im:
        assert "LOW CONFIDENCE" in im.text["Title"]
    quiet = Predictor(pkg, PredictorConfig(backend="torch", precision="fp32", uncertainty=False)).predict(case)
    assert quiet.uncertainty == {} and [a for a in quiet.alerts if a["kind"] != "plausibility"] == []
    assert np.array_equal(quiet.label, pred.label)  # measuring changes nothing in the segmentation
