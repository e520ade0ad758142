"""Scene <-> files: input volumes out to files, the engine's outputs back into the scene.

Everything here takes a ``vtkMRMLScene`` and nodes; nothing calls ``slicer.app``,
``slicer.modules`` or Qt, so it runs both inside Slicer and on the ``slicer-core``
wheel. Slicer nodes are RAS; files are LPS: the conversion is done by the storage
nodes (and by :func:`node_geometry`, through ``voxmmsd.io.geometry.lps_to_ras_matrix``).

The inputs' way out is :mod:`~VoxMMSDSegmentationLib.scene_export`, the label names, colours and
terminology :mod:`~VoxMMSDSegmentationLib.scene_labels` (both re-exported here); this module
brings the engine's outputs back into the scene.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np
from voxmmsd.errors import InputError

from VoxMMSDSegmentationLib.scene_export import (  # noqa: F401  (re-exported: the scene's I/O in one name)
    check_input_node,
    export_inputs,
    export_volume,
    node_geometry,
    node_ijk_to_lps,
)
from VoxMMSDSegmentationLib.scene_labels import (  # noqa: F401
    TERMINOLOGY_CONTEXT,
    LabelSpec,
    default_labels,
    get_terminology,
    labels_from_model,
    set_terminology,
    style_segments,
    terminology_string,
)

log = logging.getLogger(__name__)

#: region / label key -> display name of the volumes table
REGION_NAMES = {
    "WT": "Whole tumor (NETC + SNFH + ET)",
    "TC": "Tumor core (NETC + ET)",
    "ET": "Enhancing tumor",
    "NETC": "Non-enhancing tumor core",
    "SNFH": "Surrounding non-enhancing FLAIR hyperintensity",
    "RC": "Resection cavity",
}


def _slicer() -> Any:
    import slicer  # local: the module must import without Slicer

    return slicer


# ---------------------------------------------------------------- scene changes

class SceneChanges:
    """Nodes added to the scene by one operation, so that a failure or cancel can undo them."""

    def __init__(self, scene: Any) -> None:
        self.scene = scene
        self.node_ids: List[str] = []

    def track(self, node: Any) -> Any:
        """Record ``node`` (and its display/storage nodes) as added by this operation."""
        if node is not None:
            for getter in ("GetDisplayNode", "GetStorageNode"):
                extra = getattr(node, getter, lambda: None)()
                if extra is not None and extra.GetID() and extra.GetID() not in self.node_ids:
                    self.node_ids.append(extra.GetID())
            if node.GetID() not in self.node_ids:
                self.node_ids.append(node.GetID())
        return node

    def rollback(self) -> None:
        """Remove every tracked node (and its subject-hierarchy item) from the scene."""
        sh = _subject_hierarchy(self.scene, create=False)
        for node_id in reversed(self.node_ids):
            node = self.scene.GetNodeByID(node_id)
            if node is None:
                continue
            if sh is not None:
                item = sh.GetItemByDataNode(node)
                if item:
                    sh.RemoveItem(item, False, False)
            self.scene.RemoveNode(node)
        self.node_ids = []


def scene_node_ids(scene: Any) -> List[str]:
    """IDs of all nodes of ``scene`` (to check that it is as it was)."""
    return [scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())]


# ---------------------------------------------------------------- outputs -> scene

def check_readable(path: Path, what: str) -> None:
    """Read the header of an image file with SimpleITK; :class:`InputError` if it is damaged.

    Slicer's storage nodes abort the whole process on some damaged files, so outputs are
    checked before they reach one.
    """
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        raise InputError(f"The {what} {path} is damaged or not an image; run the segmentation again.") from None


def load_segmentation_file(scene: Any, path: Path, name: str, changes: SceneChanges) -> Any:
    """A new segmentation node read from a ``.seg.nrrd`` (storage node kept out of the scene)."""
    slicer = _slicer()
    check_readable(path, "segmentation")
    seg = changes.track(scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name))
    storage = slicer.vtkMRMLSegmentationStorageNode()
    storage.SetFileName(str(path))
    if not storage.ReadData(seg):
        raise InputError(f"Could not read the segmentation {path}. The engine's output is damaged; "
                         f"run the segmentation again.")
    changes.track(seg)  # ReadData created a display node
    return seg


def load_labelmap_file(scene: Any, path: Path, name: str, labels: Sequence[LabelSpec],
                       changes: SceneChanges) -> Any:
    """A new segmentation node from a label map file (NIfTI/NRRD), one segment per present label."""
    slicer = _slicer()
    check_readable(path, "label map")
    temp = SceneChanges(scene)
    try:
        lm = temp.track(scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", name + " labels"))
        storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
        storage.SetFileName(str(path))
        storage.SetSingleFile(True)
        if not storage.ReadData(lm):
            raise InputError(f"Could not read the label map {path}. Run the segmentation again.")
        seg = changes.track(scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name))
        seg.CreateDefaultDisplayNodes()
        changes.track(seg)
        logic = slicer.vtkSlicerSegmentationsModuleLogic()
        logic.SetMRMLScene(scene)
        if not logic.ImportLabelmapToSegmentationNode(lm, seg):
            raise InputError(f"Could not convert the label map {path} into segments.")
    finally:
        temp.rollback()
    return seg


def _subject_hierarchy(scene: Any, create: bool = True) -> Optional[Any]:
    """The scene's subject hierarchy node (created if asked and missing); None where unsupported."""
    if not create:
        return scene.GetFirstNodeByClass("vtkMRMLSubjectHierarchyNode")
    slicer = _slicer()
    cls = getattr(slicer, "vtkMRMLSubjectHierarchyNode", None)
    if cls is None:
        return None
    try:
        return cls.GetSubjectHierarchyNode(scene)
    except (AttributeError, TypeError):  # pragma: no cover - builds without subject hierarchy
        return None


def place_with(scene: Any, node: Any, reference: Any) -> bool:
    """Put ``node`` in the subject hierarchy under the same parent (study) as ``reference``.

    Returns False where the scene has no subject hierarchy (some headless builds).
    """
    sh = _subject_hierarchy(scene)
    if sh is None:
        return False
    ref_item = sh.GetItemByDataNode(reference)
    parent = sh.GetItemParent(ref_item) if ref_item else sh.GetSceneItemID()
    item = sh.GetItemByDataNode(node)
    if not item:
        item = sh.CreateItem(parent, node)
    else:
        sh.SetItemParent(item, parent)
    return bool(item)


def volumes_table(scene: Any, volumes_ml: Mapping[str, float], name: str, changes: SceneChanges) -> Any:
    """A table node: one row per region (WT, TC, ET, then sub-regions), volume in mL."""
    import vtk

    table = changes.track(scene.AddNewNodeByClass("vtkMRMLTableNode", name))
    keys = [k for k in REGION_NAMES if k in volumes_ml] + [k for k in volumes_ml if k not in REGION_NAMES]
    region, label, volume = vtk.vtkStringArray(), vtk.vtkStringArray(), vtk.vtkDoubleArray()
    region.SetName("Region")
    label.SetName("Name")
    volume.SetName("Volume (mL)")
    for key in keys:
        region.InsertNextValue(key)
        label.InsertNextValue(REGION_NAMES.get(key, key))
        volume.InsertNextValue(round(float(volumes_ml[key]), 3))
    for column in (region, label, volume):
        table.AddColumn(column)
    table.SetColumnUnitLabel("Volume (mL)", "mL")
    table.SetColumnDescription("Volume (mL)", "Tumour volume in millilitres")
    table.SetUseColumnTitleAsColumnHeader(True)
    return table


@dataclass
class ImportedResult:
    """What an engine run added to the scene."""

    segmentation: Any
    table: Any
    segment_ids: List[str]
    volumes_ml: Dict[str, float]
    warnings: List[str] = field(default_factory=list)
    report: Dict[str, Any] = field(default_factory=dict)
    #: the report's warnings as ``{"kind", "message"}`` (kinds: uncertainty, thick_slices, ...)
    alerts: List[Dict[str, str]] = field(default_factory=list)


def find_output(out_dir: Path, outputs: Optional[Mapping[str, Any]] = None) -> Path:
    """The segmentation file of an engine output folder (``.seg.nrrd`` preferred)."""
    candidates: List[Path] = []
    for value in (outputs or {}).values():
        if isinstance(value, str) and (value.endswith(".seg.nrrd") or value.endswith(".nii.gz")):
            candidates.append(Path(value) if Path(value).is_absolute() else Path(out_dir) / value)
    candidates += [Path(out_dir) / "segmentation.seg.nrrd", Path(out_dir) / "segmentation.nii.gz"]
    candidates.sort(key=lambda p: not p.name.endswith(".seg.nrrd"))
    for path in candidates:
        if path.is_file():
            return path
    raise InputError(f"The engine wrote no segmentation into {out_dir} (expected segmentation.seg.nrrd). "
                     f"See the log for the engine's error.")


def read_report(out_dir: Path) -> Dict[str, Any]:
    import json

    path = Path(out_dir) / "report.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError:
        return {}
    except ValueError as exc:
        raise InputError(f"{path} is not valid JSON ({exc}). Run the segmentation again.") from None


def show_in_3d(seg: Any, visible: bool = True) -> bool:
    """Show (or hide) a segmentation in the 3D views: builds its closed-surface representation
    once (the costly part, so only on request) and sets 3D visibility. True if a surface exists."""
    segmentation = seg.GetSegmentation()
    surface = "Closed surface"
    if visible and not segmentation.ContainsRepresentation(surface):
        seg.CreateClosedSurfaceRepresentation()
    display = seg.GetDisplayNode()
    if display is None:
        seg.CreateDefaultDisplayNodes()
        display = seg.GetDisplayNode()
    display.SetVisibility3D(bool(visible))
    if visible:
        display.SetPreferredDisplayRepresentationName3D(surface)
    return bool(segmentation.ContainsRepresentation(surface))


def report_warnings(report: Mapping[str, Any]) -> List[Dict[str, str]]:
    """``report.json``'s ``warnings`` as ``{"kind", "message"}`` (plain strings of older engines: kind ``warning``)."""
    out = []
    for item in report.get("warnings") or []:
        if isinstance(item, Mapping):
            out.append({"kind": str(item.get("kind") or "warning"), "message": str(item.get("message", ""))})
        else:
            out.append({"kind": "warning", "message": str(item)})
    return [a for a in out if a["message"]]


def import_result(scene: Any, out_dir: Path, reference: Any, name: str,
                  labels: Optional[Sequence[LabelSpec]] = None,
                  outputs: Optional[Mapping[str, Any]] = None) -> ImportedResult:
    """Load an engine output folder as ONE segmentation on ``reference``'s grid plus a volumes table.

    On any failure the scene is left exactly as it was (all added nodes removed).
    """
    labels = list(labels) if labels else default_labels()
    changes = SceneChanges(scene)
    try:
        report = read_report(out_dir)
        path = find_output(out_dir, outputs)
        if path.name.endswith(".seg.nrrd"):
            seg = load_segmentation_file(scene, path, name, changes)
        else:
            seg = load_labelmap_file(scene, path, name, labels, changes)
        seg.SetReferenceImageGeometryParameterFromVolumeNode(reference)
        seg.SetNodeReferenceID("referenceImageGeometryRef", reference.GetID())
        segment_ids = style_segments(seg, labels)
        if not segment_ids:
            raise InputError(f"{path} holds no segment with a known label value "
                             f"({[s.value for s in labels]}). Is it an output of this model?")
        volumes = {str(k): float(v) for k, v in (report.get("volumes_ml") or {}).items()}
        if not volumes:
            volumes = volumes_from_segmentation(seg, reference, labels)
        table = volumes_table(scene, volumes, name + " volumes", changes)
        place_with(scene, seg, reference)
        place_with(scene, table, reference)
        alerts = report_warnings(report)
        return ImportedResult(seg, table, segment_ids, volumes, [a["message"] for a in alerts], report, alerts)
    except Exception:
        changes.rollback()
        raise


def labelmap_array(scene: Any, seg: Any, reference: Any, labels: Sequence[LabelSpec]) -> np.ndarray:
    """The segmentation as an internal label array ``(k, j, i)`` on ``reference``'s grid."""
    import vtk

    slicer = _slicer()
    temp = SceneChanges(scene)
    try:
        lm = temp.track(scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "voxmmsd-export"))
        logic = slicer.vtkSlicerSegmentationsModuleLogic()
        logic.SetMRMLScene(scene)
        ids = vtk.vtkStringArray()
        segmentation = seg.GetSegmentation()
        values = []
        known = {spec.value for spec in labels}
        for i in range(segmentation.GetNumberOfSegments()):
            seg_id = segmentation.GetNthSegmentID(i)
            value = int(segmentation.GetSegment(seg_id).GetLabelValue())
            if value in known:
                ids.InsertNextValue(seg_id)
                values.append(value)
        if not logic.ExportSegmentsToLabelmapNode(seg, ids, lm, reference):
            raise InputError("Could not convert the segmentation to a label map.")
        arr = slicer.util.arrayFromVolume(lm).copy()
    finally:
        temp.rollback()
    # exported values are 1..n in the order of ``ids``: map them back to label values
    lut = np.zeros(max(len(values) + 1, 256), dtype=np.uint8)
    for index, value in enumerate(values, start=1):
        lut[index] = value
    return lut[arr]


def volumes_from_segmentation(seg: Any, reference: Any, labels: Sequence[LabelSpec]) -> Dict[str, float]:
    """Region volumes (mL) measured on the segmentation itself (when no report gave them)."""
    from voxmmsd.io.labels import volumes_ml

    label = labelmap_array(reference.GetScene(), seg, reference, labels)
    spacing = reference.GetSpacing()
    return volumes_ml(label, float(np.prod(spacing)) / 1000.0)
