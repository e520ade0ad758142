"""A package's fallback model for a missing sequence: chosen per case, said in the report, and switchable off."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from support.packages import build_tiny_package
from voxmmsd import synthetic
from voxmmsd.cli.main import main
from voxmmsd.infer.fallback import fallback_model

RULE = {"fallback_when_missing": {"t2w": "tiny@1.0", "t2f": "tiny@1.0"}}


def test_the_first_missing_sequence_with_a_rule_decides() -> None:
    assert fallback_model(RULE, ["t1n", "t1c", "t2w", "t2f"]) is None
    assert fallback_model(RULE, ["t1n", "t1c", "t2w"]) == ("tiny@1.0", "t2f")
    assert fallback_model(RULE, ["t1c", "t2f"]) == ("tiny@1.0", "t2w")  # no rule for T1n: T2w's applies
    assert fallback_model(RULE, ["t1c", "t2w", "t2f"]) is None  # only T1n missing: no rule
    assert fallback_model({}, ["t1c"]) is None


@pytest.fixture()
def resources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    res = tmp_path / "models"
    base = build_tiny_package(res / "tiny", version="2.0", tolerates_missing=True, export_onnx=False, inference=RULE)
    build_tiny_package(base / "1.0", version="1.0", seed=1, tolerates_missing=True, export_onnx=False)
    monkeypatch.setenv("VOXMMSD_RESOURCES", str(res))
    return res


def _case(folder: Path, case_id: str, drop: str = "") -> Path:
    paths = synthetic.write_case(folder / case_id, case_id, seed=2, geometry=synthetic.default_geometry((36, 40, 28)))
    if drop:
        paths[drop].unlink()
    return folder / case_id


def _report(folder: Path) -> dict:
    return json.loads((folder / "report.json").read_text(encoding="utf-8"))


def test_single_case_uses_the_fallback_says_so_and_obeys_no_fallback(resources: Path, tmp_path: Path) -> None:
    full = _case(tmp_path / "in", "full")
    no_flair = _case(tmp_path / "in", "noflair", drop="t2f")
    common = ["--model", "tiny", "--progress", "none", "--no-qc", "--backend", "torch", "--skull-strip", "off"]
    assert main(["segment", str(full), "--out", str(tmp_path / "a"), *common]) == 0
    assert _report(tmp_path / "a")["model"]["version"] == "2.0"
    assert main(["segment", str(no_flair), "--out", str(tmp_path / "b"), *common]) == 0
    rep = _report(tmp_path / "b")
    assert rep["model"]["version"] == "1.0"
    notes = [w for w in rep["warnings"] if w["kind"] == "model_fallback"]
    assert len(notes) == 1 and "FLAIR" in notes[0]["message"] and "tiny@1.0" in notes[0]["message"]
    assert main(["segment", str(no_flair), "--out", str(tmp_path / "c"), "--no-fallback", *common]) == 0
    rep = _report(tmp_path / "c")
    assert rep["model"]["version"] == "2.0" and not [w for w in rep["warnings"] if w["kind"] == "model_fallback"]


def test_batch_chooses_per_case(resources: Path, tmp_path: Path) -> None:
    data = tmp_path / "batch"
    _case(data, "full")
    _case(data, "noflair", drop="t2f")
    _case(data, "not1n", drop="t1n")
    assert main(["segment", "--batch", str(data), "--out", str(tmp_path / "out"), "--model", "tiny",
                 "--progress", "none", "--no-qc", "--backend", "torch", "--skull-strip", "off"]) == 0
    versions = {c: _report(tmp_path / "out" / c)["model"]["version"] for c in ("full", "noflair", "not1n")}
    assert versions == {"full": "2.0", "noflair": "1.0", "not1n": "2.0"}
    shutil.rmtree(tmp_path / "out")
