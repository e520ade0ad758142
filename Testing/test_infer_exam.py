"""Raw clinical exams end to end: a synthetic head (skull, scalp, noisy air) around a phantom brain, thick oblique
slices, one grid and a small head motion per series, clinical file names; one ``voxmmsd segment`` command.

Real parts only: deepbet's own networks (from its wheel) strip the skull, SimpleITK registers, the real CLI runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from support.exams import PROTOCOL, write_raw_exam
from support.packages import build_tiny_package
from voxmmsd import rawexam, synthetic
from voxmmsd.cli.main import main
from voxmmsd.errors import InputError
from voxmmsd.exam import register as reg
from voxmmsd.exam.acquisition import acquisition_warnings, working_preprocessing
from voxmmsd.exam.load import ExamOptions, load_exam
from voxmmsd.io.discovery import find_case
from voxmmsd.preprocessing import PreprocessConfig

pytest.importorskip("deepbet")

@pytest.fixture(scope="module")
def exam(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_raw_exam(tmp_path_factory.mktemp("raw"))


@pytest.fixture(scope="module")
def segmented(exam: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``voxmmsd segment EXAM --out OUT``: nothing else (registration and brain extraction are on by default)."""
    pkg = build_tiny_package(tmp_path_factory.mktemp("pkg") / "tiny", tolerates_missing=True)
    out = tmp_path_factory.mktemp("out") / "result"
    assert main(["segment", str(exam), "--out", str(out), "--model", str(pkg), "--progress", "none"]) == 0
    return out


def read(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float(np.count_nonzero(a & b)) / max(int(np.count_nonzero(a)) + int(np.count_nonzero(b)), 1)


def test_the_raw_exam_is_raw(exam: Path) -> None:
    files = find_case(exam)
    assert {k: p.name for k, p in files.sequences.items()} == {
        "t1n": "patient_MPRAGE.nii.gz", "t1c": "patient_T1 POST GAD.nii.gz", "t2w": "patient_T2 TSE.nii.gz",
        "t2f": "patient_fla.nii.gz"}
    grids = {k: sitk.ReadImage(str(p)) for k, p in files.sequences.items()}
    assert len({(g.GetSize(), g.GetSpacing(), g.GetDirection()) for g in grids.values()}) == 4
    assert abs(grids["t1c"].GetDirection()[4]) < 0.99  # oblique
    arr = sitk.GetArrayFromImage(grids["t1c"])
    assert np.count_nonzero(arr == arr.min()) / arr.size < 0.05  # noisy air, not a stripped background


@pytest.mark.slow  # registration + brain extraction end to end (~15 s): run by .ci/run after the default tests
def test_one_command_registers_strips_and_confines_the_tumour_to_the_brain(segmented: Path, exam: Path) -> None:
    names = {p.name for p in segmented.iterdir()}
    assert {"segmentation.nii.gz", "brain_mask.nii.gz", "registration_qc.png", "qc.png", "report.json"} <= names
    report = json.loads((segmented / "report.json").read_text())
    prep = report["inputs"]["preparation"]
    brain_img = sitk.ReadImage(str(exam.parent / "truth" / "truth_brain.nii.gz"))
    truth_brain = sitk.GetArrayFromImage(brain_img) > 0
    idx = np.argwhere(truth_brain).mean(axis=0)[::-1]
    centre = np.asarray(brain_img.TransformContinuousIndexToPhysicalPoint([float(v) for v in idx]))
    assert prep["looks_skull_stripped"] is False
    assert prep["brain_extraction"]["tool"] == "deepbet" and prep["brain_extraction"]["source"] == "t1n"
    assert set(prep["registration"]) == {"t1n", "t2w", "t2f"}
    for seq, r in prep["registration"].items():
        assert r["converged"] and r["metric_final"] < r["metric_identity"], seq
        # target registration error: the found transform undoes the simulated head motion (within 2 mm at points
        # up to 50 mm from the brain's centre; the slices are 5 mm thick)
        found = sitk.Euler3DTransform()
        found.SetCenter(r["transform"]["center"])
        found.SetParameters(r["transform"]["parameters"])
        motion = rawexam._motion(PROTOCOL[seq], centre)
        points = [centre + d for d in np.vstack([np.eye(3), -np.eye(3)]) * 50.0]
        tre = max(np.linalg.norm(np.asarray(motion.TransformPoint(found.TransformPoint(list(p)))) - p) for p in points)
        assert tre < 2.0, (seq, tre)
    assert "MPRAGE" in prep["discovery"]["t1n"] and "fla" in prep["discovery"]["t2f"]
    kinds = {w["kind"]: w["message"] for w in report["warnings"]}
    assert "Thick slices" in kinds["thick_slices"] and "T1 post-contrast (T1c) 1.2x1.2x5 mm" in kinds["thick_slices"]
    assert b"THICK SLICES" in (segmented / "qc.png").read_bytes()  # the QC picture's title says so too
    mask = read(segmented / "brain_mask.nii.gz") > 0
    assert dice(mask, truth_brain) > 0.9  # deepbet on T1n, carried through T1n's registration onto T1c
    seg = read(segmented / "segmentation.nii.gz")
    assert seg.shape == mask.shape and seg.any()
    assert not np.any(seg[~mask])  # no tumour voxel outside the brain mask
    with open(segmented / "registration_qc.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_refused_when_brain_extraction_cannot_run(exam: Path, tmp_path: Path) -> None:
    """Without deepbet (e.g. an ONNX-only install) a head is refused before any compute, and nothing is written."""
    pkg = build_tiny_package(tmp_path / "tiny", tolerates_missing=True)
    out = tmp_path / "out"
    code = textwrap.dedent(f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "deepbet" or name.startswith("deepbet."):
                    raise ImportError("blocked for the test")
                return None
        sys.meta_path.insert(0, Block())
        from voxmmsd.cli.main import main
        sys.exit(main(["segment", {str(exam)!r}, "--out", {str(out)!r}, "--model", {str(pkg)!r},
                       "--progress", "none"]))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "brain extraction is needed" in text and "Refusing to segment a head" in text
    assert "--skull-strip off" in text  # the way out for images stripped elsewhere
    assert not (out / "segmentation.nii.gz").exists()


def test_skull_strip_off_warns(exam: Path) -> None:
    files = find_case(exam)
    only_t1c = replace(files, sequences={"t1c": files.sequences["t1c"]})
    case = load_exam(only_t1c, ExamOptions(register="off", skull_strip="off"), allow_missing=("t1n", "t2w", "t2f"))
    kinds = [a["kind"] for a in case.alerts]
    assert "not_skull_stripped" in kinds and "thick_slices" in kinds
    assert case.brain_mask is None and case.preparation["registration"] == {}
    assert case.exam_picture is None


def test_acquisition_warnings_and_working_grid() -> None:
    names = {"t1c": "T1c", "t2w": "T2w"}
    assert acquisition_warnings({"t1c": (1.0, 1.0, 1.0), "t2w": (0.9, 0.9, 1.2)}, names) == []
    thick = acquisition_warnings({"t1c": (0.9, 0.9, 5.5), "t2w": (1.0, 1.0, 1.0)}, names)
    assert [w["kind"] for w in thick] == ["thick_slices"] and "T1c 0.9x0.9x5.5 mm" in thick[0]["message"]
    big = acquisition_warnings({"t1c": (1.6, 1.6, 2.0)}, names)
    assert [w["kind"] for w in big] == ["voxel_size"]
    cfg = PreprocessConfig()
    assert working_preprocessing(cfg, (1.0, 1.1, 1.6)) == cfg
    assert working_preprocessing(cfg, (0.9, 0.9, 5.5)).spacing == (1.0, 1.0, 1.0)
    own = PreprocessConfig(spacing=(2.0, 2.0, 2.0))
    assert working_preprocessing(own, (0.9, 0.9, 5.5)) == own  # a package that resamples keeps its grid


def test_registration_check_refuses_implausible_motion_and_keeps_a_better_identity() -> None:
    fixed = synthetic.default_geometry((10, 10, 10)).blank()
    far = reg.Registration(sitk.Euler3DTransform(), -0.5, -0.9, 30, "Step too small", 40.0, 3.0, True)
    with pytest.raises(InputError, match="did not converge to the right place"):
        reg.check_result(far, "FLAIR", "T1c", fixed)
    worse = reg.Registration(sitk.Euler3DTransform(), -0.9, -0.5, 30, "Step too small", 2.0, 1.0, True)
    tx, note = reg.check_result(worse, "FLAIR", "T1c", fixed)
    assert note and "kept the scanner's alignment" in note
    assert np.allclose(tx.GetParameters(), 0.0)
    capped = reg.Registration(sitk.Euler3DTransform(), -0.5, -0.9, 200, "Maximum number of iterations (200) "
                              "exceeded.", 2.0, 1.0, False)
    assert "iteration limit" in reg.check_result(capped, "FLAIR", "T1c", fixed)[1]


@pytest.mark.slow
def test_default_model_finds_a_plausible_tumour_in_the_raw_exam(exam: Path, tmp_path: Path) -> None:
    """The bundled model, one command, on the raw exam: a tumour where the phantom's is, none outside the brain."""
    out = tmp_path / "out"
    assert main(["segment", str(exam), "--out", str(out), "--progress", "none"]) == 0
    truth = read(exam.parent / "truth" / "truth_label.nii.gz")
    brain = read(exam.parent / "truth" / "truth_brain.nii.gz") > 0
    seg = read(out / "segmentation.nii.gz")
    wt_truth, wt = truth > 0, seg > 0
    assert dice(wt, wt_truth) > 0.4
    centre = np.argwhere(wt).mean(axis=0) - np.argwhere(wt_truth).mean(axis=0)
    assert np.linalg.norm(centre * np.array([5.0, 1.2, 1.2])) < 15.0  # mm
    assert np.count_nonzero(wt & ~brain) <= 0.01 * np.count_nonzero(wt)
