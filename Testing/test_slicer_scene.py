"""The Logic's scene work on real MRML objects (``slicer-core`` wheel): inputs to files and back,
the output segmentation's geometry, segments, terminology, the volumes table, cleanup."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="needs the slicer-core wheel (Python >= 3.10)")
vtk = pytest.importorskip("vtk")

MODULE_DIR = Path(__file__).resolve().parents[1] / "VoxMMSDSegmentation"
if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))

from support.slicer_scene import ijk_to_ras, make_volume, phantom_label, rotation_ras  # noqa: E402
from voxmmsd.errors import InputError  # noqa: E402
from voxmmsd.io.geometry import Geometry  # noqa: E402
from voxmmsd.io.labels import LABEL_TABLE, volumes_ml  # noqa: E402
from voxmmsd.io.reader import read_image  # noqa: E402
from voxmmsd.io.writer import write_label_nifti, write_seg_nrrd  # noqa: E402
from VoxMMSDSegmentationLib import scene as scene_io  # noqa: E402


@pytest.fixture
def scene():
    s = slicer.vtkMRMLScene()
    return s


@pytest.fixture
def study(scene):
    """Subject hierarchy as Slicer builds it: patient > study > the input volumes."""
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    patient = sh.CreateSubjectItem(sh.GetSceneItemID(), "Patient 1")
    return sh, sh.CreateStudyItem(patient, "MR study")


def add_to_study(study, node):
    sh, item = study
    sh.CreateItem(item, node)


@pytest.mark.parametrize("extension", [".nrrd", ".nii.gz"])
def test_inputs_written_with_their_geometry(scene, tmp_path, extension):
    node, array = make_volume(scene, "BraTS_t1ce")
    paths = scene_io.export_inputs({"t1c": node}, tmp_path, extension=extension)
    image = read_image(paths["t1c"], "T1c")
    got = Geometry.of(image)
    # Slicer RAS -> file LPS: first two physical axes negated
    expected_lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ ijk_to_ras(node)
    np.testing.assert_allclose(got.ijk_to_lps(), expected_lps, atol=1e-4)
    assert got.same_as(scene_io.node_geometry(node), tol=1e-4)
    assert got.size == (12, 14, 9)
    np.testing.assert_allclose(got.spacing, (0.9, 1.3, 3.0), atol=1e-5)
    import SimpleITK as sitk

    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), array)


def test_export_leaves_scene_unchanged(scene, tmp_path):
    node, _ = make_volume(scene, "t1c")
    before = scene_io.scene_node_ids(scene)
    scene_io.export_inputs({"t1c": node}, tmp_path)
    assert scene_io.scene_node_ids(scene) == before
    assert node.GetStorageNode() is None


def test_transformed_or_labelmap_inputs_are_refused(scene, tmp_path):
    node, _ = make_volume(scene, "t1c")
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    node.SetAndObserveTransformNodeID(transform.GetID())
    with pytest.raises(InputError, match="Harden the transform"):
        scene_io.export_inputs({"t1c": node}, tmp_path)
    lm = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "labels")
    slicer.util.updateVolumeFromArray(lm, np.zeros((3, 4, 5), np.uint8))
    with pytest.raises(InputError, match="not a scalar image"):
        scene_io.export_inputs({"t2f": lm}, tmp_path)
    with pytest.raises(InputError, match="No volume is selected"):
        scene_io.check_input_node(None, "T1c")


def write_engine_output(folder: Path, node, with_seg: bool = True, with_report: bool = True) -> np.ndarray:
    """What the engine writes for ``node``: a label map on the node's grid (read back from the exported file)."""
    exported = scene_io.export_inputs({"t1c": node}, folder / "in")
    geometry = Geometry.of(read_image(exported["t1c"], "T1c"))
    label = phantom_label(geometry.shape)
    out = folder / "out"
    write_label_nifti(label, geometry, out / "segmentation.nii.gz")
    if with_seg:
        write_seg_nrrd(label, geometry, out / "segmentation.seg.nrrd")
    if with_report:
        report = {"volumes_ml": volumes_ml(label, geometry.voxel_volume_ml), "warnings": ["low FLAIR contrast"]}
        (out / "report.json").write_text(json.dumps(report))
    return label


def check_segmentation(scene, result, reference, label):
    seg = result.segmentation
    # one segment per label, names, colours, terminology from the label table
    segmentation = seg.GetSegmentation()
    assert segmentation.GetNumberOfSegments() == len(LABEL_TABLE)
    for info in LABEL_TABLE:
        seg_id = segmentation.GetSegmentIdBySegmentName(info.name)
        assert seg_id, info.name
        segment = segmentation.GetSegment(seg_id)
        assert segment.GetLabelValue() == info.value
        np.testing.assert_allclose(segment.GetColor(), info.color, atol=1e-6)
        term = scene_io.get_terminology(segment)
        assert f"{info.category[0]}^{info.category[1]}^{info.category[2]}" in term
        assert f"{info.type[0]}^{info.type[1]}^{info.type[2]}" in term
    # geometry: the reference volume's
    assert seg.GetNodeReferenceID("referenceImageGeometryRef") == reference.GetID()
    exported = scene_io.labelmap_array(scene, seg, reference, scene_io.default_labels())
    assert exported.shape == label.shape
    np.testing.assert_array_equal(exported, label)
    lm = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
    logic = slicer.vtkSlicerSegmentationsModuleLogic()
    logic.SetMRMLScene(scene)
    assert logic.ExportAllSegmentsToLabelmapNode(seg, lm, 0)
    np.testing.assert_allclose(ijk_to_ras(lm)[:3, :3], ijk_to_ras(reference)[:3, :3], atol=1e-4)
    # the table: volumes per region in mL
    table = result.table
    assert table.GetNumberOfColumns() == 3
    rows = {table.GetCellText(r, 0): float(table.GetCellText(r, 2)) for r in range(table.GetNumberOfRows())}
    spacing = np.prod(reference.GetSpacing()) / 1000.0
    assert rows["WT"] == pytest.approx(np.isin(label, (1, 2, 3)).sum() * spacing, abs=1e-3)
    assert rows["ET"] == pytest.approx((label == 3).sum() * spacing, abs=1e-3)
    assert rows["TC"] == pytest.approx(np.isin(label, (1, 3)).sum() * spacing, abs=1e-3)
    assert list(rows)[:3] == ["WT", "TC", "ET"]


def test_import_seg_nrrd_on_reference_geometry(scene, study, tmp_path):
    reference, _ = make_volume(scene, "t1c", direction=rotation_ras(-35, 50), spacing=(1.1, 0.7, 2.5))
    add_to_study(study, reference)
    label = write_engine_output(tmp_path, reference)
    result = scene_io.import_result(scene, tmp_path / "out", reference, "tumour")
    check_segmentation(scene, result, reference, label)
    assert result.warnings == ["low FLAIR contrast"]
    sh, study_item = study
    for node in (result.segmentation, result.table):
        assert sh.GetItemParent(sh.GetItemByDataNode(node)) == study_item


def test_import_nifti_label_map_without_report(scene, study, tmp_path):
    """The NIfTI path: segments named and coloured from the label table; volumes measured."""
    reference, _ = make_volume(scene, "t1c", direction=rotation_ras(90, 0), spacing=(1.0, 1.0, 3.0))
    add_to_study(study, reference)
    label = write_engine_output(tmp_path, reference, with_seg=False, with_report=False)
    result = scene_io.import_result(scene, tmp_path / "out", reference, "tumour")
    seg = result.segmentation.GetSegmentation()
    present = {int(v) for v in np.unique(label) if v}
    assert seg.GetNumberOfSegments() == len(present)
    for info in LABEL_TABLE:
        if info.value in present:
            segment = seg.GetSegment(seg.GetSegmentIdBySegmentName(info.name))
            np.testing.assert_allclose(segment.GetColor(), info.color, atol=1e-6)
            assert info.type[1] in scene_io.get_terminology(segment)
    np.testing.assert_array_equal(scene_io.labelmap_array(scene, result.segmentation, reference,
                                                          scene_io.default_labels()), label)
    spacing = np.prod(reference.GetSpacing()) / 1000.0
    assert result.volumes_ml["WT"] == pytest.approx(np.isin(label, (1, 2, 3)).sum() * spacing)
    # no temporary label-map node left behind
    assert scene.GetNodesByClass("vtkMRMLLabelMapVolumeNode").GetNumberOfItems() == 0


@pytest.mark.parametrize("damage", ["corrupt_seg", "bad_report", "missing", "no_known_labels"])
def test_failed_import_leaves_scene_as_it_was(scene, tmp_path, damage):
    reference, _ = make_volume(scene, "t1c")
    out = tmp_path / "out"
    write_engine_output(tmp_path, reference)
    if damage == "corrupt_seg":
        (out / "segmentation.seg.nrrd").write_bytes(b"NRRD0004\ngarbage\n")
    elif damage == "bad_report":
        (out / "report.json").write_text("{not json")
    elif damage == "missing":
        for f in out.iterdir():
            f.unlink()
    before = scene_io.scene_node_ids(scene)
    labels = [scene_io.LabelSpec(9, "X", "Unknown", (1, 1, 1))] if damage == "no_known_labels" else None
    with pytest.raises(InputError):
        scene_io.import_result(scene, out, reference, "tumour", labels=labels)
    assert scene_io.scene_node_ids(scene) == before


def test_terminology_string_format():
    spec = scene_io.default_labels()[2]
    term = scene_io.terminology_string(spec)
    parts = term.split("~")
    assert parts[0] == scene_io.TERMINOLOGY_CONTEXT
    assert parts[1] == "SCT^49755003^Morphologically Altered Structure"
    assert parts[2] == "SCT^108369006^Neoplasm"


def test_labels_from_model_json():
    model = {"labels": [{"value": 3, "key": "ET", "name": "Enhancing tumor", "color": [1, 0, 0],
                         "snomed": {"category": ["SCT", "49755003", "Morphologically Altered Structure"],
                                    "type": ["SCT", "108369006", "Neoplasm"]}}]}
    (spec,) = scene_io.labels_from_model(model)
    assert spec.value == 3 and spec.key == "ET" and tuple(spec.type) == ("SCT", "108369006", "Neoplasm")
