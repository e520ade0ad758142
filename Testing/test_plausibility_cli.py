"""``--on-implausible warn|refuse`` end to end with real ``python -m voxmmsd segment`` processes.

The cases are hand-made brains (``plausibility_phantom``) written to disk, one of them with its T2w
and FLAIR files exchanged: whatever the (tiny, random) network predicts, the sequence checks find
that case implausible (``t2w_vs_flair``), so the outcome of every run is known in advance.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
import support.plausibility_phantom as ph
from PIL import Image
from support.packages import build_tiny_package

COMMON = ["--backend", "onnx", "--device", "cpu", "--skull-strip", "off", "--register", "off"]


@pytest.fixture(scope="module")
def pkg(tmp_path_factory):
    return build_tiny_package(tmp_path_factory.mktemp("pkg") / "tiny")


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    root = tmp_path_factory.mktemp("cases")
    images, label = ph.case(0)
    ph.write(root / "swapped", "swapped", images, swap=("t2w", "t2f"))
    ph.write(root / "normal", "normal", images)
    return root


def segment(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "voxmmsd", "segment", *args], capture_output=True, text=True,
                          timeout=600)


def events(stdout: str) -> list:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def test_refuse_writes_the_report_and_no_label_map(pkg, cases, tmp_path):
    out = tmp_path / "out"
    done = segment(str(cases / "swapped"), "--out", str(out), "--model", str(pkg), "--on-implausible", "refuse",
                   "--progress", "json", *COMMON)
    assert done.returncode == 3, done.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["refused"] is True and report["plausibility"]["verdict"] == "implausible"
    assert "t2w_vs_flair" in report["plausibility"]["failed"]
    assert not (out / "segmentation.nii.gz").exists() and not (out / "segmentation.seg.nrrd").exists()
    assert "segmentation" not in report["outputs"]
    assert any(w["kind"] == "plausibility" for w in report["warnings"])
    last = events(done.stdout)[-1]
    assert last["event"] == "error" and last["refused"] is True and "no label map" in last["message"]
    with Image.open(out / "qc.png") as im:
        assert "IMPLAUSIBLE" in im.info["Title"] and "REFUSED" in im.info["Title"]
    assert "Refused (--on-implausible refuse)" in done.stderr


def test_warn_writes_the_label_map_with_the_warning(pkg, cases, tmp_path):
    out = tmp_path / "out"
    done = segment(str(cases / "swapped"), "--out", str(out), "--model", str(pkg), *COMMON)  # warn: the default
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "segmentation.nii.gz").is_file() and (out / "segmentation.seg.nrrd").is_file()
    report = json.loads((out / "report.json").read_text())
    assert report["plausibility"]["verdict"] == "implausible" and "refused" not in report
    kinds = [w["kind"] for w in report["warnings"]]
    assert "plausibility" in kinds
    assert "plausibility: implausible" in done.stdout and "IMPLAUSIBLE segmentation" in done.stderr
    with Image.open(out / "qc.png") as im:
        assert "IMPLAUSIBLE (" in im.info["Title"] and "t2w_vs_flair" in im.info["Title"]
    for check in report["plausibility"]["checks"]:
        assert {"name", "value", "threshold", "status", "meaning"} <= set(check)


def test_batch_lists_the_verdict_and_refuses_case_by_case(pkg, cases, tmp_path):
    out = tmp_path / "batch"
    done = segment("--batch", str(cases), "--out", str(out), "--model", str(pkg), "--on-implausible", "refuse",
                   "--progress", "none", *COMMON)
    rows = {r["case_id"]: r for r in csv.DictReader(open(out / "summary.csv"))}
    assert set(rows) == {"normal", "swapped"}, done.stderr[-3000:]
    assert rows["swapped"]["status"] == "refused" and rows["swapped"]["plausibility"] == "implausible"
    assert not (out / "swapped" / "segmentation.nii.gz").exists() and (out / "swapped" / "report.json").is_file()
    normal = rows["normal"]
    assert normal["plausibility"] in ("plausible", "doubtful", "implausible")  # the random network decides
    assert (out / "normal" / "segmentation.nii.gz").exists() == (normal["status"] == "done")
    assert done.returncode == 3 and "refused as implausible" in done.stdout
    again = segment("--batch", str(cases), "--out", str(out), "--model", str(pkg), "--on-implausible", "refuse",
                    "--progress", "none", *COMMON)  # nothing to redo: the refusal is remembered
    rows = {r["case_id"]: r for r in csv.DictReader(open(out / "summary.csv"))}
    assert rows["swapped"]["status"] == "refused" and again.returncode == 3
