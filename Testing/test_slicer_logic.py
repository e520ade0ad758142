"""The module's Logic end to end on real MRML scenes, with the engine process replaced by a
test double (``test_slicer_fake_engine.py``) that writes real label maps on the input grid."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="needs the slicer-core wheel (Python >= 3.10)")

MODULE_DIR = Path(__file__).resolve().parents[1] / "VoxMMSDSegmentation"
if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))

from support.slicer_scene import make_volume, rotation_ras  # noqa: E402
from voxmmsd import synthetic  # noqa: E402
from voxmmsd.errors import InputError  # noqa: E402
from VoxMMSDSegmentationLib import batch, process  # noqa: E402
from VoxMMSDSegmentationLib import scene as scene_io  # noqa: E402
from VoxMMSDSegmentationLib.commands import SegmentOptions  # noqa: E402
from VoxMMSDSegmentationLib.segmentation import CANCELLED, FAILED, FINISHED, REFUSED, SegmentationJob  # noqa: E402

FAKE = [sys.executable, str(Path(__file__).resolve().parent / "test_slicer_fake_engine.py")]


@pytest.fixture
def scene():
    return slicer.vtkMRMLScene()


def four_inputs(scene):
    nodes = {}
    for i, key in enumerate(("t1n", "t1c", "t2w", "t2f")):
        nodes[key], _ = make_volume(scene, f"case_{key}", direction=rotation_ras(25, -15), seed=i)
    return nodes


def job_for(scene, tmp_path, monkeypatch, mode="ok", on_implausible="warn", **kw):
    monkeypatch.setenv("FAKE_ENGINE_MODE", mode)
    monkeypatch.setenv("FAKE_ENGINE_PIDS", str(tmp_path / "pids.json"))
    events = []
    options = SegmentOptions(model="fake-model", tta=True, device="cpu", on_implausible=on_implausible)
    job = SegmentationJob(scene, four_inputs(scene), options,
                          engine=FAKE, temp_root=tmp_path, on_progress=lambda s: events.append(s.fraction), **kw)
    return job, events


def test_segmentation_job_adds_result(scene, tmp_path, monkeypatch):
    job, fractions = job_for(scene, tmp_path, monkeypatch)
    assert job.run(timeout=120) == FINISHED, job.error
    assert fractions[-1] == 1.0 and fractions == sorted(fractions)  # the bar never moves back
    # one step per stage and per window: read, check, preprocess, 4 windows, postprocess, write
    steps = sorted({round(f, 4) for f in fractions if 0 < f < 1})
    assert len(steps) >= 8, steps
    assert max(b - a for a, b in zip([0.0] + steps, steps + [1.0])) <= 0.2  # no big jumps
    result = job.result
    assert result.segmentation.GetName() == "case_t1c tumour segmentation"
    assert result.segmentation.GetNodeReferenceID("referenceImageGeometryRef") == job.inputs["t1c"].GetID()
    assert result.segmentation.GetSegmentation().GetNumberOfSegments() == 4
    assert "fake warning: FLAIR resampled onto the T1c grid" in result.warnings
    kinds = [a["kind"] for a in result.alerts]
    assert kinds.count("uncertainty") == 1 and "thick_slices" in kinds  # events and report.json merged
    text = job.warning_text()
    assert text.splitlines()[0] == "The model is unsure: fake: 31% of the tumour voxels are uncertain"
    assert "Thick slices: fake: T2 has 6 mm slices" in text
    assert result.volumes_ml["WT"] > result.volumes_ml["TC"] > result.volumes_ml["ET"] > 0
    assert "a log line that is not an event" in job.log
    assert not job.work_dir.exists()  # temporary inputs and outputs removed


def test_engine_gets_the_options(scene, tmp_path, monkeypatch):
    out = tmp_path / "kept"
    job, _ = job_for(scene, tmp_path, monkeypatch, output_dir=out)
    assert job.run(timeout=120) == FINISHED, job.error
    args = json.loads((out / "report.json").read_text())["arguments"]
    assert args[args.index("--model") + 1] == "fake-model"
    assert "--tta" in args and args[args.index("--device") + 1] == "cpu"
    assert args[args.index("--progress") + 1] == "json"
    assert {a for a in args if a in ("--t1n", "--t1c", "--t2w", "--t2f")} == {"--t1n", "--t1c", "--t2w", "--t2f"}
    assert (out / "segmentation.seg.nrrd").is_file()  # a given output folder is kept


@pytest.mark.parametrize("mode", ["fail", "corrupt"])
def test_failed_job_leaves_scene_as_it_was(scene, tmp_path, monkeypatch, mode):
    job, _ = job_for(scene, tmp_path, monkeypatch, mode=mode)
    before = scene_io.scene_node_ids(scene)
    assert job.run(timeout=120) == FAILED
    assert ("fake failure" in job.error) if mode == "fail" else ("damaged" in job.error)
    assert scene_io.scene_node_ids(scene) == before
    assert not job.work_dir.exists()


@pytest.mark.skipif(sys.platform.startswith("win"), reason="POSIX process groups")
def test_cancel_kills_engine_and_leaves_scene(scene, tmp_path, monkeypatch):
    job, _ = job_for(scene, tmp_path, monkeypatch, mode="slow")
    before = scene_io.scene_node_ids(scene)
    job.start()
    import time

    end = time.monotonic() + 60
    while job.state.iteration < 1 and time.monotonic() < end:
        job.poll()
        time.sleep(0.05)
    assert job.state.iteration >= 1
    pids = json.loads((tmp_path / "pids.json").read_text())
    job.cancel()
    assert job.status == CANCELLED and job.poll()
    for pid in pids:
        assert process.wait_gone(pid, 10)
    assert scene_io.scene_node_ids(scene) == before
    assert not job.work_dir.exists()


def test_plausible_result_has_no_dialog(scene, tmp_path, monkeypatch):
    job, _ = job_for(scene, tmp_path, monkeypatch)
    assert job.run(timeout=120) == FINISHED, job.error
    assert job.verdict == "" and job.dialog_text() is None  # an engine without a verdict: nothing shown
    assert job.status_text().startswith("Done. WT ")


def test_implausible_result_is_loaded_with_status_and_dialog(scene, tmp_path, monkeypatch):
    job, _ = job_for(scene, tmp_path, monkeypatch, mode="implausible")
    assert job.run(timeout=120) == FINISHED, job.error
    assert job.result is not None and job.result.segmentation.GetScene() is scene  # warn: loaded
    assert job.verdict == "implausible"
    assert "Plausibility: IMPLAUSIBLE: do not use it without checking (t2w_vs_flair)" in job.status_text()
    dialog = job.dialog_text()
    assert dialog.startswith("This segmentation is IMPLAUSIBLE")
    assert "- t2w_vs_flair = -0.45 (fail; should be at least 0)" in dialog
    assert job.warning_text().splitlines()[0].startswith("Plausibility check: IMPLAUSIBLE segmentation")


def test_refused_result_adds_nothing_and_explains(scene, tmp_path, monkeypatch):
    job, _ = job_for(scene, tmp_path, monkeypatch, mode="implausible", on_implausible="refuse")
    before = scene_io.scene_node_ids(scene)
    assert job.run(timeout=120) == REFUSED, job.error
    assert scene_io.scene_node_ids(scene) == before and job.result is None
    assert job.verdict == "implausible" and job.done
    assert job.status_text().startswith("Refused: the result is implausible; nothing was added.")
    assert job.dialog_text().startswith("The result was refused as implausible")
    assert not job.work_dir.exists()


def test_bad_inputs_start_nothing(scene, tmp_path):
    node, _ = make_volume(scene, "t1c")
    node.SetAndObserveTransformNodeID(scene.AddNewNodeByClass("vtkMRMLLinearTransformNode").GetID())
    job = SegmentationJob(scene, {"t1c": node}, SegmentOptions(), engine=FAKE, temp_root=tmp_path)
    with pytest.raises(InputError):
        job.start()
    assert job.process is None and not job.work_dir.exists()
    with pytest.raises(InputError, match="No input volume"):
        SegmentationJob(scene, {"t1c": None}, SegmentOptions())


def test_batch_through_the_logic(scene, tmp_path, monkeypatch):
    data = synthetic.write_dataset(tmp_path / "data", n=2)
    monkeypatch.setenv("FAKE_ENGINE_MODE", "ok")
    before = scene_io.scene_node_ids(scene)
    results = batch.segment_folder(scene, data, tmp_path / "out", SegmentOptions(), engine=FAKE, timeout=120)
    assert [r.status for r in results] == [FINISHED, FINISHED], [r.error for r in results]
    assert batch.exit_code(results) == 0
    assert scene_io.scene_node_ids(scene) == before  # every case unloaded again
    rows = list(csv.DictReader(open(tmp_path / "out" / "summary.csv")))
    assert [r["case_id"] for r in rows] == [r.case_id for r in results]
    assert all(float(r["WT_ml"]) > 0 for r in rows)  # the engine's summary layout (voxmmsd.infer.summary)
    for r in results:
        case_out = tmp_path / "out" / r.case_id
        assert (case_out / "segmentation.seg.nrrd").is_file() and (case_out / "volumes.csv").is_file()
    monkeypatch.setenv("FAKE_ENGINE_MODE", "fail")
    failed = batch.segment_folder(scene, data, tmp_path / "out2", SegmentOptions(), engine=FAKE, timeout=120)
    assert batch.exit_code(failed) == 1 and all(r.error for r in failed)


def test_batch_refuses_implausible_cases(scene, tmp_path, monkeypatch):
    data = synthetic.write_dataset(tmp_path / "data", n=2)
    monkeypatch.setenv("FAKE_ENGINE_MODE", "implausible")
    before = scene_io.scene_node_ids(scene)
    results = batch.segment_folder(scene, data, tmp_path / "out", SegmentOptions(on_implausible="refuse"),
                                   engine=FAKE, timeout=120)
    assert [r.status for r in results] == [REFUSED, REFUSED], [r.error for r in results]
    assert batch.exit_code(results) == 3 and scene_io.scene_node_ids(scene) == before
    rows = list(csv.DictReader(open(tmp_path / "out" / "summary.csv")))
    assert [r["plausibility"] for r in rows] == ["implausible", "implausible"]
    for r in results:
        case_out = tmp_path / "out" / r.case_id
        assert (case_out / "report.json").is_file() and not (case_out / "segmentation.seg.nrrd").exists()
    warned = batch.segment_folder(scene, data, tmp_path / "out2", SegmentOptions(), engine=FAKE, timeout=120)
    assert [r.status for r in warned] == [FINISHED, FINISHED] and batch.exit_code(warned) == 0
    rows = list(csv.DictReader(open(tmp_path / "out2" / "summary.csv")))
    assert [r["plausibility"] for r in rows] == ["implausible", "implausible"]


def register_conversion_rules():
    """What Slicer's Segmentations module does at application start (slicer-core has no application)."""
    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    names = {type(r).__name__ for r in factory.GetConverterRules()}
    for cls in (slicer.vtkBinaryLabelmapToClosedSurfaceConversionRule,
                slicer.vtkClosedSurfaceToBinaryLabelmapConversionRule):
        if cls.__name__ not in names:
            factory.RegisterConverterRule(cls())


def test_show_in_3d_on_request(scene, tmp_path, monkeypatch):
    register_conversion_rules()
    job, _ = job_for(scene, tmp_path, monkeypatch)
    assert job.run(timeout=120) == FINISHED
    seg = job.result.segmentation
    assert not seg.GetSegmentation().ContainsRepresentation("Closed surface")  # not built unless asked
    assert scene_io.show_in_3d(seg)
    assert seg.GetSegmentation().ContainsRepresentation("Closed surface") and seg.GetDisplayNode().GetVisibility3D()
    surface = seg.GetClosedSurfaceInternalRepresentation(job.result.segment_ids[0])
    assert surface is not None and surface.GetNumberOfPoints() > 0
    scene_io.show_in_3d(seg, False)
    assert not seg.GetDisplayNode().GetVisibility3D()


def test_volume_table_values_match_label(scene, tmp_path, monkeypatch):
    job, _ = job_for(scene, tmp_path, monkeypatch)
    assert job.run(timeout=120) == FINISHED
    label = scene_io.labelmap_array(scene, job.result.segmentation, job.inputs["t1c"], scene_io.default_labels())
    spacing = float(np.prod(job.inputs["t1c"].GetSpacing())) / 1000.0
    assert job.result.volumes_ml["ET"] == pytest.approx((label == 3).sum() * spacing, rel=1e-6)
