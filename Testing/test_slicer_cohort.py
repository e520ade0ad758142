"""Learn from corrections, Slicer side, on real MRML scenes (``slicer-core``) and the real engine process:
a scene with four volumes and a segmentation edited as the Segment Editor edits it becomes a cohort case whose
files give back the same voxels and geometry; segments are matched to labels; the proposal is remembered;
the panel's tables, commands, install rule and job resumption."""

from __future__ import annotations

import ast
import json
import re
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="needs the slicer-core wheel (Python >= 3.10)")
vtk = pytest.importorskip("vtk")
sitk = pytest.importorskip("SimpleITK")

MODULE_DIR = Path(__file__).resolve().parents[1] / "VoxMMSDSegmentation"
if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))

from support.slicer_scene import rotation_ras  # noqa: E402
from voxmmsd import synthetic  # noqa: E402
from voxmmsd.errors import InputError  # noqa: E402
from voxmmsd.io.geometry import Geometry  # noqa: E402
from VoxMMSDSegmentationLib import cohort as cohort_lib  # noqa: E402
from VoxMMSDSegmentationLib import jobs, learning  # noqa: E402
from VoxMMSDSegmentationLib import scene as scene_io  # noqa: E402

SEQUENCES = ("t1n", "t1c", "t2w", "t2f")


def load_node(scene, path: Path, name: str, label: bool = False):
    """A volume node read by Slicer's own storage node, as 'Add data' does."""
    node = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode" if label else "vtkMRMLScalarVolumeNode", name)
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(path))
    assert storage.ReadData(node)
    return node


def set_segment(scene, seg, seg_id: str, mask: np.ndarray, reference) -> None:
    """Replace a segment's voxels, as a Segment Editor effect does (a label map imported into the segment)."""
    lm = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "edit")
    lm.CopyOrientation(reference)
    slicer.util.updateVolumeFromArray(lm, mask.astype(np.uint8))
    ids = vtk.vtkStringArray()
    ids.InsertNextValue(seg_id)
    logic = slicer.vtkSlicerSegmentationsModuleLogic()
    logic.SetMRMLScene(scene)
    assert logic.ImportLabelmapToSegmentationNode(lm, seg, ids)
    scene.RemoveNode(lm)


def segment_id(seg, name: str) -> str:
    return seg.GetSegmentation().GetSegmentIdBySegmentName(name)


@pytest.fixture
def reviewed_scene(tmp_path: Path):
    """A rotated, anisotropic case loaded into a scene (volume names carrying a patient's name), the model's
    proposal imported as the module imports it and remembered, then corrected in two segments."""
    rot = np.diag([-1.0, -1, 1]) @ rotation_ras(25, 15)  # LPS directions of a rotated grid
    geometry = synthetic.default_geometry((40, 44, 24), (1.1, 0.9, 2.0), tuple(rot.ravel()))
    files = synthetic.write_case(tmp_path / "case", "case", seed=4, geometry=geometry)
    scene = slicer.vtkMRMLScene()
    inputs = {k: load_node(scene, files[k], f"Doe^Jane {k}") for k in SEQUENCES}
    out = tmp_path / "engine-output"
    out.mkdir()
    (out / "segmentation.nii.gz").write_bytes(files["label"].read_bytes())
    result = scene_io.import_result(scene, out, inputs["t1c"], "Doe^Jane tumour segmentation")
    store = tmp_path / "proposals"
    assert cohort_lib.remember_proposal(result.segmentation, out, {"model": {"id": "tiny", "version": "1.2"}}, store)
    proposal = sitk.GetArrayFromImage(sitk.ReadImage(str(files["label"])))
    seg = result.segmentation
    ref = inputs["t1c"]
    blob = np.zeros(proposal.shape, bool)
    blob[2:5, 5:9, 5:9] = True  # the reviewer paints enhancing tumour where the model saw none ...
    et_before = proposal == 3
    set_segment(scene, seg, segment_id(seg, "Enhancing tumor"), et_before | blob, ref)
    snfh = proposal == 2
    erased = snfh & (np.arange(proposal.shape[2])[None, None, :] < proposal.shape[2] // 2)
    set_segment(scene, seg, segment_id(seg, "Surrounding non-enhancing FLAIR hyperintensity"), snfh & ~erased, ref)
    edited = proposal.copy()
    edited[erased] = 0
    edited[blob] = 3
    return scene, inputs, seg, proposal, edited, blob, erased


def test_segments_match_labels_by_id_name_or_terminology_and_unknown_ones_are_refused(reviewed_scene):
    scene, inputs, seg, proposal, edited, *_ = reviewed_scene
    values = cohort_lib.segment_values(seg)
    names = {seg.GetSegmentation().GetSegment(i).GetName(): v for i, v in values.items()}
    assert names == {"Non-enhancing tumor core": 1, "Surrounding non-enhancing FLAIR hyperintensity": 2,
                     "Enhancing tumor": 3}
    np.testing.assert_array_equal(cohort_lib.reviewed_labels(scene, seg, inputs["t1c"]), edited)
    # renamed by hand, but still carrying its terminology: matched by the SNOMED code
    segment = seg.GetSegmentation().GetSegment(segment_id(seg, "Enhancing tumor"))
    segment.SetName("my ET")
    assert cohort_lib.segment_values(seg)[segment_id(seg, "my ET")] == 3
    # a segment the Segment Editor added (default name, no terminology) stops the export, naming it
    seg.GetSegmentation().AddEmptySegment("", "Segment_1")
    with pytest.raises(InputError, match="Segment 'Segment_1' is not one of the tumour labels.*Rename it"):
        cohort_lib.segment_values(seg)


def test_scene_to_cohort_case_round_trips_voxels_and_geometry(reviewed_scene, tmp_path: Path):
    scene, inputs, seg, proposal, edited, blob, erased = reviewed_scene
    before = scene_io.scene_node_ids(scene)
    lines: list = []
    job = cohort_lib.CohortAddJob(scene, inputs, seg, tmp_path / "cohort", python=sys.executable,
                                  temp_root=tmp_path / "tmp", register="off", skull_strip="off",
                                  on_line=lines.append)
    (tmp_path / "tmp").mkdir()
    assert job.run(timeout=600) == "finished", job.error + "\n" + "\n".join(lines[-20:])
    assert scene_io.scene_node_ids(scene) == before  # the scene is left as it was
    assert not any((tmp_path / "tmp").iterdir())  # and the temporary files are gone
    from voxmmsd.cohort.layout import open_cohort, read_case

    cohort = open_cohort(tmp_path / "cohort")
    written = cohort.case_files(job.case_id)
    for key in SEQUENCES:
        image = sitk.ReadImage(str(written[key]))
        np.testing.assert_array_equal(sitk.GetArrayFromImage(image), slicer.util.arrayFromVolume(inputs[key]))
        assert Geometry.of(image).same_as(scene_io.node_geometry(inputs[key]), tol=1e-4), key
    label = sitk.ReadImage(str(written["label"]))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(label), edited)
    assert Geometry.of(label).same_as(scene_io.node_geometry(inputs["t1c"]), tol=1e-4)
    record = read_case(cohort, job.case_id)
    assert record["edited"] is True and record["proposed_by"] == {"id": "tiny", "version": "1.2"}
    assert record["edits"]["ET"]["added_voxels"] == int((blob & (proposal != 3)).sum())
    assert record["edits"]["ET"]["removed_voxels"] == 0
    assert record["edits"]["SNFH"]["removed_voxels"] == int((erased | (blob & (proposal == 2))).sum())
    assert record["edits"]["NETC"]["added_voxels"] == record["edits"]["NETC"]["removed_voxels"] == 0
    assert record["source"] == cohort_lib.SOURCE
    text = json.dumps(record)
    assert "Doe" not in text and "Jane" not in text
    assert not any("Doe" in p.name for p in cohort.root.rglob("*"))


def test_a_refused_case_leaves_the_cohort_and_the_scene_alone(reviewed_scene, tmp_path: Path):
    scene, inputs, seg, *_ = reviewed_scene
    seg.GetSegmentation().AddEmptySegment("", "Segment_1")
    before = scene_io.scene_node_ids(scene)
    job = cohort_lib.CohortAddJob(scene, inputs, seg, tmp_path / "cohort", python=sys.executable)
    with pytest.raises(InputError, match="Segment_1"):
        job.start()
    assert job.status == "failed" and scene_io.scene_node_ids(scene) == before
    assert not (tmp_path / "cohort").exists()
    with pytest.raises(InputError, match="T2-FLAIR"):
        cohort_lib.export_case(scene, {**inputs, "t2f": None}, seg, tmp_path / "x")


def test_remembered_proposal_names_its_file_and_model_and_old_copies_go(tmp_path: Path):
    scene = slicer.vtkMRMLScene()
    seg = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "s")
    out = tmp_path / "out"
    out.mkdir()
    (out / "segmentation.nii.gz").write_bytes(b"label map bytes")
    store = tmp_path / "store"
    store.mkdir()
    old = store / "old.nii.gz"
    old.write_bytes(b"x")
    week = time.time() - 100 * 86400
    import os

    os.utime(old, (week, week))
    kept = cohort_lib.remember_proposal(seg, out, {"model": {"id": "m", "version": "2"}}, store)
    assert kept is not None and kept.read_bytes() == b"label map bytes" and not old.exists()
    assert cohort_lib.proposal_of(seg) == (kept, "m@2")
    kept.unlink()
    assert cohort_lib.proposal_of(seg) == (None, "m@2")  # a vanished copy: added without edit statistics
    assert cohort_lib.remember_proposal(seg, tmp_path / "empty", {}, store) is None


def test_panel_tables_commands_and_the_install_rule(tmp_path: Path, synthetic_case: Path):
    from voxmmsd.cli.main import main

    cohort = tmp_path / "cohort"
    assert learning.cohort_rows(cohort) == []
    assert main(["-q", "cohort", "add", str(cohort), str(synthetic_case), "--skull-strip", "off",
                 "--proposal", str(synthetic_case / "case000-seg.nii.gz"), "--proposed-by", "m@1"]) == 0
    rows = learning.cohort_rows(cohort)
    assert len(rows) == 1 and len(rows[0]) == len(learning.CASE_COLUMNS)
    assert rows[0][2] == "m 1" and rows[0][3] == "accepted as proposed" and float(rows[0][4]) > 0

    opts = learning.CohortLearnOptions(str(cohort), str(tmp_path / "run"), "voxmmsd-brats-default", "", 50, 3, "cpu")
    assert learning.learn_arguments(opts) == ["cohort", "finetune", str(cohort), "--out", str(tmp_path / "run"),
                                              "--model", "voxmmsd-brats-default", "--max-iters", "50", "--folds",
                                              "3", "--device", "cpu"]
    assert learning.learn_arguments(opts.__class__(**{**opts.__dict__, "init": "/pt"}))[-2:] == ["--init", "/pt"]
    assert learning.exam_pretrain_arguments("/raw", "/out", "m", 100)[:6] == ["cohort", "pretrain", "--exams", "/raw",
                                                                            "--out", "/out"]
    with pytest.raises(ValueError):
        learning.exam_pretrain_arguments("", "/out", "m", 100)
    first = learning.new_run_folder(cohort, "finetune", now=0)
    first.mkdir(parents=True)
    assert learning.new_run_folder(cohort, "finetune", now=0) != first

    run = tmp_path / "run"
    comparison = {"cases": 4, "folds": [["a"], ["b"]], "start_model": {"id": "x", "version": "1"},
                  "summary": {"start": {r: {"dice": 0.5, "abs_volume_error_ml": 3.0}
                                        for r in ("WT", "TC", "ET", "mean")},
                              "finetuned": {r: {"dice": 0.4, "abs_volume_error_ml": 2.0}
                                            for r in ("WT", "TC", "ET", "mean")}},
                  "decision": {"not_worse": False, "reason": "worse on the held-out cases"}}
    table = learning.comparison_rows(comparison)
    assert table[0] == ("WT", "0.500", "0.400", "-0.100", "3.0", "2.0") and table[-1][0] == "mean"
    assert learning.verdict(comparison).startswith("WORSE than x 1 on 4 held-out cohort cases (2-fold")
    assert learning.can_install(None, run, False)[0] is False
    (run / "final" / "model").mkdir(parents=True)
    assert "still being fine-tuned" in learning.can_install(comparison, run, False)[1]
    (run / "final" / "model" / "model.json").write_text("{}")
    assert learning.can_install(comparison, run, False) == (False, learning.can_install(comparison, run, False)[1])
    assert learning.can_install(comparison, run, True)[0] is True
    comparison["decision"]["not_worse"] = True
    assert learning.can_install(comparison, run, False)[0] is True
    (run / "comparison.json").write_text(json.dumps(comparison))
    assert learning.read_comparison(run)["cases"] == 4 and learning.read_comparison(tmp_path) is None


def test_cohort_jobs_resume_by_running_the_same_command(tmp_path: Path):
    command = ["cohort", "finetune", "/c", "--out", str(tmp_path), "--device", "cpu"]
    assert jobs.resume_arguments("cohort", command, tmp_path, "cpu") == command
    plain = ["finetune", "--data", "cohort", "--out", "r", "--device", "cpu"]
    assert jobs.resume_arguments("finetune", plain, Path("r"), "cpu") == ["finetune", "--device", "cpu",
                                                                          "--resume", "r"]
    (tmp_path / "events.jsonl").write_text(json.dumps({"time": 1, "stage": "cohort", "event": "stopped"}) + "\n")
    st = jobs.status(tmp_path)
    assert st.kind == "cohort" and st.state == jobs.STOPPED and st.resumable and st.model_dir is None


def test_installed_cohort_model_shows_its_provenance_in_the_selector():
    from VoxMMSDSegmentationLib.models import entry_from_meta

    meta = {"id": "m-local", "version": "1.0.0", "name": "M, local fine-tune",
            "training": {"cohort": {"cases": 3, "date": "2025-01-02T00:00:00Z"}},
            "metrics": {"cohort_crossval": {"finetuned": {r: {"dice": 0.8} for r in ("WT", "TC", "ET")},
                                            "start": {r: {"dice": 0.7} for r in ("WT", "TC", "ET")}}}}
    entry = entry_from_meta(meta, Path("/x"), "installed")
    assert entry.label == ("M, local fine-tune 1.0.0 (installed; cohort of 3 cases, 2025-01-02; held-out Dice "
                           "WT/TC/ET 0.80/0.80/0.80 vs start 0.70/0.70/0.70)")
    assert entry_from_meta({"id": "b", "version": "1", "name": "B"}, None, "bundled").label == "B 1 (bundled)"


def test_cohort_panel_uses_only_widgets_logic_methods_and_widget_members_that_exist():
    ui = ET.parse(MODULE_DIR / "Resources" / "UI" / "VoxMMSDSegmentation.ui")
    names = {w.get("name") for w in ui.iter("widget")}
    panel = (MODULE_DIR / "VoxMMSDSegmentationLib" / "cohort_panel.py").read_text()
    used = set(re.findall(r"self\.ui\.(\w+)", panel))
    assert used and not (used - names), f"widgets absent from the .ui: {sorted(used - names)}"
    module = ast.parse((MODULE_DIR / "VoxMMSDSegmentation.py").read_text())
    classes = {n.name: n for n in module.body if isinstance(n, ast.ClassDef)}
    logic_module = ast.parse((MODULE_DIR / "VoxMMSDSegmentationLib" / "logic.py").read_text())
    logic_class = next(n for n in logic_module.body
                       if isinstance(n, ast.ClassDef) and n.name == "VoxMMSDSegmentationLogic")
    logic = {f.name for f in logic_class.body if isinstance(f, ast.FunctionDef)}
    assert not (set(re.findall(r"self\.logic\.(\w+)", panel)) - logic)
    widget = classes["VoxMMSDSegmentationWidget"]
    members = {f.name for f in widget.body if isinstance(f, ast.FunctionDef)}
    members |= {t.attr for n in ast.walk(widget) if isinstance(n, ast.Assign) for t in n.targets
                if isinstance(t, ast.Attribute)}
    assert not (set(re.findall(r"self\.widget\.(\w+)", panel)) - members)
    training = ast.parse((MODULE_DIR / "VoxMMSDSegmentationLib" / "training_panel.py").read_text())
    panel_class = next(n for n in training.body if isinstance(n, ast.ClassDef) and n.name == "TrainingPanel")
    panel_methods = {f.name for f in panel_class.body if isinstance(f, ast.FunctionDef)}
    assert not (set(re.findall(r"self\.widget\.trainingPanel\.(\w+)", panel)) - panel_methods)
    assert "CohortPanel(self)" in (MODULE_DIR / "VoxMMSDSegmentation.py").read_text()
