"""The predictor on synthetic cases: backends agree, geometry is kept, missing sequences, OOM fallback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from support.packages import build_tiny_package
from voxmmsd import synthetic
from voxmmsd.errors import InputError
from voxmmsd.infer.backends.base import DeviceOutOfMemoryError
from voxmmsd.infer.outputs import write_outputs
from voxmmsd.infer.predictor import Predictor, PredictorConfig
from voxmmsd.io.discovery import case_from_paths, find_case
from voxmmsd.models.package import load_package


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory):
    return load_package(build_tiny_package(tmp_path_factory.mktemp("pkg") / "tiny"))


@pytest.fixture(scope="module")
def tolerant(tmp_path_factory: pytest.TempPathFactory):
    return load_package(build_tiny_package(tmp_path_factory.mktemp("pkg") / "tol", tolerates_missing=True))


@pytest.fixture(scope="module")
def oblique_case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Non-identity direction, anisotropic spacing, and FLAIR on its own (coarser, rotated) grid."""
    folder = tmp_path_factory.mktemp("cases") / "oblique"
    geom = synthetic.default_geometry((44, 52, 30), spacing=(1.0, 1.1, 1.6),
                                      direction=synthetic.rotation(2, 25).ravel())
    flair = synthetic.default_geometry((36, 40, 26), spacing=(1.3, 1.4, 1.8),
                                       direction=synthetic.rotation(0, 10).ravel())
    synthetic.write_case(folder, "obl", seed=3, geometry=geom, grids={"t2f": flair})
    return folder


def test_torch_and_onnx_backends_give_the_same_labels(package, oblique_case: Path) -> None:
    files = find_case(oblique_case)
    labels = {}
    for backend in ("torch", "onnx"):
        pred = Predictor(package, PredictorConfig(backend=backend, precision="fp32")).predict_files(files)
        assert pred.run["backend"] == backend and pred.run["mode"] == "whole"
        labels[backend] = pred.label
    counts = np.bincount(labels["torch"].ravel(), minlength=4)
    assert (counts[1:] > 50).sum() >= 2, f"the test network must predict several classes, got {counts}"
    assert (labels["torch"] == labels["onnx"]).mean() > 0.9999


def test_bf16_windows_and_tta_stay_close_to_fp32(package, oblique_case: Path) -> None:
    files = find_case(oblique_case)
    case = Predictor(package, PredictorConfig(backend="onnx")).load(files)
    ref = Predictor(package, PredictorConfig(backend="torch", precision="fp32")).predict(case).label
    for cfg in (PredictorConfig(backend="torch", precision="bf16"),
                PredictorConfig(backend="onnx", patch_size=(32, 32, 32), overlap=0.5),
                PredictorConfig(backend="onnx", tta=True)):
        pred = Predictor(package, cfg).predict(case)
        assert (pred.label == ref).mean() > 0.9, cfg
    assert Predictor(package, PredictorConfig(backend="onnx", tta=True)).predict(case).run["tta"] is True


def test_outputs_have_exactly_the_reference_geometry(package, oblique_case: Path, tmp_path: Path) -> None:
    files = find_case(oblique_case)
    pred = Predictor(package, PredictorConfig(backend="onnx")).predict_files(files)
    outputs = write_outputs(pred, tmp_path / "out", {"id": package.id, "version": package.version},
                            package.label_table)
    ref = sitk.ReadImage(str(files.sequences["t1c"]))
    seg = sitk.ReadImage(outputs["segmentation"])
    assert seg.GetSize() == ref.GetSize()
    np.testing.assert_allclose(seg.GetSpacing(), ref.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(seg.GetOrigin(), ref.GetOrigin(), atol=1e-5)
    np.testing.assert_allclose(seg.GetDirection(), ref.GetDirection(), atol=1e-6)
    assert np.array_equal(sitk.GetArrayFromImage(seg), pred.label)

    import slicerio

    nrrd = slicerio.read_segmentation(outputs["seg_nrrd"])
    np.testing.assert_allclose(nrrd["ijkToLPS"], pred.geometry.ijk_to_lps(), atol=1e-5)
    assert [s["name"] for s in nrrd["segments"]] == [e.name for e in package.label_table]
    # FLAIR lies on its own grid: co-registered by default, so the registration picture is there too
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["qc.png", "registration_qc.png", "report.json",
                                                                   "segmentation.nii.gz", "segmentation.seg.nrrd"]
    assert Path(outputs["qc"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _without_flair(folder: Path):
    files = find_case(folder)
    return case_from_paths({k: v for k, v in files.sequences.items() if k != "t2f"}, case_id="noflair")


def test_missing_sequence_refused_when_not_tolerated(package, oblique_case: Path) -> None:
    with pytest.raises(InputError, match="T2-FLAIR.*does not tolerate"):
        Predictor(package, PredictorConfig(backend="onnx")).predict_files(_without_flair(oblique_case))


def test_missing_sequence_tolerated_with_a_warning(tolerant, oblique_case: Path, tmp_path: Path) -> None:
    pred = Predictor(tolerant, PredictorConfig(backend="onnx")).predict_files(_without_flair(oblique_case))
    assert any("T2-FLAIR" in w and "missing" in w for w in pred.warnings)
    assert pred.label.shape == pred.geometry.shape
    outputs = write_outputs(pred, tmp_path, {"id": "tol", "version": "0.1"}, tolerant.label_table)
    import json

    report = json.loads(Path(outputs["report"]).read_text())
    assert any("T2-FLAIR" in w["message"] for w in report["warnings"])
    assert set(report["volumes_ml"]) == {"WT", "TC", "ET", "NETC", "SNFH", "RC"}


class ShrinkingDevice:
    """A real ONNX backend behind a 'device' that runs out of memory above a voxel limit."""

    def __init__(self, inner, limit: int, device: str = "cuda") -> None:
        self.inner, self.limit, self.device, self.name = inner, limit, device, "onnx"
        self.calls = []

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.calls.append(x.shape[2:])
        if self.device != "cpu" and int(np.prod(x.shape[2:])) > self.limit:
            raise DeviceOutOfMemoryError("cuda: test limit")
        return self.inner.forward(x)

    def on_cpu(self):
        return ShrinkingDevice(self.inner, self.limit, "cpu")

    def describe(self):
        return {"backend": "onnx", "device": self.device, "precision": "float32"}


def test_out_of_memory_falls_back_to_smaller_windows_then_cpu(package, oblique_case: Path) -> None:
    from voxmmsd.infer.backends.onnx_backend import OnnxBackend

    inner = OnnxBackend(package, "cpu")
    case = Predictor(package, PredictorConfig(backend="onnx")).load(find_case(oblique_case))
    ref = Predictor(package, PredictorConfig(backend="onnx")).predict(case).label

    dev = ShrinkingDevice(inner, limit=32 ** 3)  # the whole crop (48x48x32 padded) does not fit
    pred = Predictor(package, PredictorConfig(), backend=dev).predict(case)
    assert pred.run["mode"].startswith("windows (32")
    assert any("Out of memory" in w for w in pred.warnings)
    assert (pred.label == ref).mean() > 0.9

    tiny = ShrinkingDevice(inner, limit=10)  # nothing fits: the CPU takes over
    pred = Predictor(package, PredictorConfig(), backend=tiny).predict(case)
    assert pred.run["device"] == "cpu" and any("the CPU" in w for w in pred.warnings)
    assert (pred.label == ref).mean() > 0.9999


def test_skull_strip_warning(package, tmp_path: Path) -> None:
    paths = synthetic.write_case(tmp_path / "c", "c", seed=1)
    img = sitk.ReadImage(str(paths["t1c"]))
    arr = sitk.GetArrayFromImage(img)
    arr[arr == 0] = 300  # 'skull and background' everywhere outside the brain
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(img)
    sitk.WriteImage(out, str(paths["t1c"]))
    # brain extraction off: a warning (with --skull-strip auto it would run; see test_infer_exam.py)
    case = Predictor(package, PredictorConfig(backend="onnx", skull_strip="off")).load(find_case(tmp_path / "c"))
    assert any("skull-stripped" in w and "T1c" in w for w in case.warnings)
    assert [a["kind"] for a in case.alerts] == ["not_skull_stripped"]


def test_register_aligns_a_shifted_sequence(package, tmp_path: Path) -> None:
    from voxmmsd.exam.load import ExamOptions, load_exam

    geom = synthetic.default_geometry((40, 48, 36))
    shifted = synthetic.Geometry(geom.size, geom.spacing, tuple(o + d for o, d in zip(geom.origin, (3.0, -2.0, 0.0))),
                                 geom.direction)
    # the FLAIR file claims a grid 3 mm / 2 mm off: in physical space it is misaligned by that much
    paths = synthetic.write_case(tmp_path / "c", "c", seed=2, geometry=geom)
    img = sitk.ReadImage(str(paths["t2f"]))
    img.SetOrigin(shifted.origin)
    sitk.WriteImage(img, str(paths["t2f"]))
    files = find_case(tmp_path / "c")
    case = load_exam(files, ExamOptions(register="on"))
    plain = Predictor(package, PredictorConfig(backend="onnx", register="off")).load(files)
    truth = sitk.GetArrayFromImage(sitk.Cast(sitk.ReadImage(str(paths["t1c"])), sitk.sitkFloat32))
    ref_flair = synthetic.sample_sequence(synthetic.random_phantom(2), geom, "t2f", seed=2).astype(np.float32)
    err_reg = np.abs(case.channel("t2f") - ref_flair).mean()
    err_plain = np.abs(plain.channel("t2f") - ref_flair).mean()
    assert truth.shape == case.channel("t2f").shape
    assert err_reg < 0.5 * err_plain
    assert "registered" in case.resampled["t2f"]


def test_device_argmax_gives_the_same_labels_as_logits(package, oblique_case: Path) -> None:
    """The whole-crop pass takes the argmax in the backend; it must equal argmax(forward)."""
    from voxmmsd.infer.window import whole

    case = Predictor(package, PredictorConfig(backend="onnx")).load(find_case(oblique_case))
    for backend in ("torch", "onnx"):
        # the device argmax serves runs without the uncertainty record (it needs the scores)
        predictor = Predictor(package, PredictorConfig(backend=backend, precision="fp32", uncertainty=False))
        x = np.random.default_rng(1).normal(size=(1, 4, 32, 48, 32)).astype(np.float32)
        np.testing.assert_array_equal(predictor.backend.labels(x), predictor.backend.forward(x).argmax(1))
        image = np.stack([case.channel(s) for s in package.sequences])[:, :40, :45, :30]
        np.testing.assert_array_equal(whole(image, predictor.backend.labels),
                                      whole(image, predictor.backend.forward).argmax(0))
        calls: list = []
        direct = predictor.backend.labels
        predictor.backend.labels = lambda x, f=direct, c=calls: (c.append(x.shape), f(x))[1]  # a spy
        fast = predictor.predict(case).label
        assert len(calls) == 1, "the whole-crop pass should take the labels from the backend"
        slow = Predictor(package, PredictorConfig(backend=backend, precision="fp32", uncertainty=False),
                         backend=ShrinkingDevice(predictor.backend, limit=10 ** 9, device="cpu")).predict(case).label
        np.testing.assert_array_equal(fast, slow)  # the second backend has no labels(): logits path


def test_constant_blending_is_selectable_and_recorded(package, oblique_case: Path) -> None:
    case = Predictor(package, PredictorConfig(backend="onnx")).load(find_case(oblique_case))
    runs = {}
    for blend in ("gaussian", "constant"):
        pred = Predictor(package, PredictorConfig(backend="onnx", patch_size=(32, 32, 32), overlap=0.5,
                                                  blend=blend)).predict(case)
        assert pred.run["blend"] == blend and pred.run["mode"].startswith("windows")
        runs[blend] = pred.label
    agree = (runs["gaussian"] == runs["constant"]).mean()
    assert 0.9 < agree < 1.0, agree  # close, but the weights do change voxels at window borders
    with pytest.raises(Exception, match="Unknown blending"):
        Predictor(package, PredictorConfig(backend="onnx", blend="median"))


def test_package_component_limit_is_the_default_and_an_explicit_value_wins(tmp_path: Path, oblique_case: Path) -> None:
    from scipy import ndimage

    pkg = load_package(build_tiny_package(tmp_path / "cc", inference={"min_component_ml": 400.0}))
    files = find_case(oblique_case)
    raw = Predictor(pkg, PredictorConfig(backend="torch", precision="fp32", min_component_ml=0.0)).predict_files(files)
    cleaned = Predictor(pkg, PredictorConfig(backend="torch", precision="fp32")).predict_files(files)
    assert raw.run["min_component_ml"] == 0.0 and cleaned.run["min_component_ml"] == 400.0
    # the evidence rule (voxmmsd.infer.components): the main lesion stays; every other component (all
    # are under the limit) stays only when it lies within CONNECT_MM of it and does not fail where it fits
    from voxmmsd.infer.components import CONNECT_MM
    from voxmmsd.io.reader import load_case
    from voxmmsd.plausibility.evidence import distances_to, main_component, tumour_components

    case = load_case(files, with_label=False)
    images = {s: case.channel(s) for s in case.sequences}
    spacing = tuple(float(v) for v in case.geometry.spacing[::-1])
    comps, evidence = tumour_components(images, raw.label, spacing, case.brain_mask)
    assert len(evidence) >= 1
    main = main_component(evidence)
    dist = distances_to(comps, main.index, spacing)
    assert np.array_equal(cleaned.label[cleaned.label > 0], raw.label[cleaned.label > 0])  # nothing added
    for e in evidence:
        kept = bool((cleaned.label[comps == e.index] > 0).all())
        assert kept or not (cleaned.label[comps == e.index] > 0).any()  # a component is kept or removed whole
        if e.index == main.index:
            assert kept
        else:
            fails = main.judged and main.fits and not e.fits
            assert kept == (dist[e.index] <= CONNECT_MM and not fails), (e, dist[e.index])
    n_raw = ndimage.label(raw.label > 0, structure=np.ones((3, 3, 3)))[1]
    n_clean = ndimage.label(cleaned.label > 0, structure=np.ones((3, 3, 3)))[1]
    assert any("removed" in n for n in cleaned.run["notes"]) == (n_clean < n_raw)


def test_package_et_component_limit_relabels_specks_and_keeps_wt_and_tc(tmp_path: Path, oblique_case: Path) -> None:
    from scipy import ndimage

    pkg = load_package(build_tiny_package(tmp_path / "etc", inference={"min_et_component_ml": 400.0}))
    files = find_case(oblique_case)
    off = PredictorConfig(backend="torch", precision="fp32", min_et_component_ml=0.0)
    raw = Predictor(pkg, off).predict_files(files)
    out = Predictor(pkg, PredictorConfig(backend="torch", precision="fp32")).predict_files(files)
    assert out.run["min_et_component_ml"] == 400.0 and raw.run["min_et_component_ml"] == 0.0
    assert np.array_equal(raw.label > 0, out.label > 0)  # WT unchanged
    assert np.array_equal(np.isin(raw.label, (1, 3)), np.isin(out.label, (1, 3)))  # TC unchanged
    n_et = ndimage.label(raw.label == 3, structure=np.ones((3, 3, 3)))[1]
    assert ndimage.label(out.label == 3, structure=np.ones((3, 3, 3)))[1] == min(n_et, 1)
