"""Scene -> cohort case: the four volumes and the reviewed segmentation to files, then ``voxmmsd cohort add``.

The segmentation node is written as a label map on the T1c volume's grid (the reference grid, never
resampled) in BraTS 2023 values: each segment is matched to a tumour label by its id, its name or its
terminology (:func:`segment_values`); a segment that matches none stops the export with a message
naming it. The model's unedited proposal is remembered when a segmentation is imported
(:func:`remember_proposal`: a copy of the engine's label map in the per-user folder, named by node
attributes), so that the cohort records what the reviewer changed per segment.

Writing runs here (Slicer's storage nodes do RAS -> LPS); reading, checking and the atomic write into
the cohort run in the engine process (:class:`CohortAddJob`), like a segmentation. Nothing here calls
``slicer.app``, ``slicer.modules`` or Qt: it runs inside Slicer and on the ``slicer-core`` wheel.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional

import numpy as np
from voxmmsd.errors import InputError

from VoxMMSDSegmentationLib import scene as scene_io
from VoxMMSDSegmentationLib.events import EventState
from VoxMMSDSegmentationLib.process import EngineProcess, engine_command, engine_environment, run_to_end

log = logging.getLogger(__name__)

#: node attributes of an imported segmentation: the proposal's file and the model that made it
PROPOSAL_ATTRIBUTE = "VoxMMSD.proposal"
MODEL_ATTRIBUTE = "VoxMMSD.proposedBy"
#: overlapping segments are painted in this order of label values (the later wins: core over oedema)
PAINT_ORDER = (2, 1, 3, 4)
#: how a case reviewed in Slicer is described in its case.json (never a patient's or file's name)
SOURCE = "3D Slicer (reviewed in the Segment Editor)"


def _slicer() -> Any:
    import slicer

    return slicer


# ---------------------------------------------------------------- segments -> labels

def _norm(text: str) -> str:
    return " ".join(str(text).lower().replace("_", " ").replace("-", " ").split())


def _type_code(segment: Any) -> str:
    """The type code of a segment's terminology (``79654002`` for oedema), or ""."""
    parts = scene_io.get_terminology(segment).split("~")  # context~category~type~... ; type = scheme^code^meaning
    codes = parts[2].split("^") if len(parts) > 2 else []
    return codes[1] if len(codes) > 1 else ""


def segment_values(seg: Any, labels: Optional[List[scene_io.LabelSpec]] = None) -> Dict[str, int]:
    """Segment id -> tumour label value, by segment id (``NETC``, ``SNFH``, ``ET``, ``RC``), then name (or its
    key), then terminology type code. Raises :class:`InputError` naming a segment that matches no label."""
    labels = labels or scene_io.default_labels()
    by_key = {_norm(s.key): s.value for s in labels}
    by_name = {_norm(s.name): s.value for s in labels}
    by_code = {str(s.type[1]): s.value for s in labels if len(s.type) > 1 and s.type[1]}
    segmentation = seg.GetSegmentation()
    out: Dict[str, int] = {}
    for i in range(segmentation.GetNumberOfSegments()):
        seg_id = segmentation.GetNthSegmentID(i)
        segment = segmentation.GetSegment(seg_id)
        name = str(segment.GetName())
        value = by_key.get(_norm(seg_id)) or by_name.get(_norm(name)) or by_key.get(_norm(name)) \
            or by_code.get(_type_code(segment))
        if value is None:
            names = ", ".join(f"'{s.name}' ({s.key})" for s in labels)
            raise InputError(f"Segment '{name}' is not one of the tumour labels, so it cannot become training "
                             f"data. Rename it to one of {names} (Segment Editor: double-click the name), or "
                             f"delete it.")
        out[seg_id] = value
    if not out:
        raise InputError(f"The segmentation '{seg.GetName()}' has no segment. Segment the tumour first.")
    return out


def _remove_new_nodes(scene: Any, before: List[str]) -> None:
    """Remove the nodes added since ``before`` (a label-map export adds its display and colour nodes)."""
    known = set(before)
    for node_id in reversed(scene_io.scene_node_ids(scene)):
        if node_id not in known:
            node = scene.GetNodeByID(node_id)
            if node is not None:
                scene.RemoveNode(node)


def reviewed_labels(scene: Any, seg: Any, reference: Any) -> np.ndarray:
    """The segmentation as an internal (BraTS 2023) label array ``(k, j, i)`` on ``reference``'s grid."""
    import vtk

    slicer = _slicer()
    values = segment_values(seg)
    logic = slicer.vtkSlicerSegmentationsModuleLogic()
    logic.SetMRMLScene(scene)
    before = scene_io.scene_node_ids(scene)
    out = np.zeros(tuple(reversed(reference.GetImageData().GetDimensions())), np.uint8)
    try:
        lm = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "voxmmsd-cohort-export")
        for seg_id, value in sorted(values.items(), key=lambda kv: PAINT_ORDER.index(kv[1])):
            ids = vtk.vtkStringArray()
            ids.InsertNextValue(seg_id)
            if not logic.ExportSegmentsToLabelmapNode(seg, ids, lm, reference):
                raise InputError(f"Could not convert segment '{seg_id}' of '{seg.GetName()}' to a label map.")
            mask = slicer.util.arrayFromVolume(lm)
            if mask.shape != out.shape:
                raise InputError(f"Segment '{seg_id}' could not be exported on the T1c volume's grid "
                                 f"({mask.shape} != {out.shape}).")
            out[mask > 0] = value
    finally:
        _remove_new_nodes(scene, before)
    return out


def write_label_file(scene: Any, label: np.ndarray, reference: Any, path: Path) -> Path:
    """Write ``label`` (``(k, j, i)`` on ``reference``'s grid) with ``reference``'s geometry, through a storage node."""
    slicer = _slicer()
    before = scene_io.scene_node_ids(scene)
    try:
        lm = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "voxmmsd-cohort-label")
        lm.CopyOrientation(reference)
        slicer.util.updateVolumeFromArray(lm, np.ascontiguousarray(label.astype(np.uint8)))
        return scene_io.export_volume(lm, Path(path))
    finally:
        _remove_new_nodes(scene, before)


# ---------------------------------------------------------------- the model's proposal

def proposals_dir() -> Path:
    from VoxMMSDSegmentationLib.models import user_home

    return user_home() / "proposals"


def remember_proposal(seg: Any, out_dir: Path, report: Mapping[str, Any], store: Optional[Path] = None,
                      keep_days: float = 90.0) -> Optional[Path]:
    """Keep a copy of the engine's label map (the model's unedited proposal) and name it, and the model that
    made it, in attributes of the segmentation node (saved with the scene). Copies older than ``keep_days``
    are removed. Returns the copy, or None when the output holds no NIfTI label map."""
    source = Path(out_dir) / "segmentation.nii.gz"
    if not source.is_file():
        return None
    store = Path(store) if store is not None else proposals_dir()
    store.mkdir(parents=True, exist_ok=True)
    for old in store.glob("*.nii.gz"):
        if time.time() - old.stat().st_mtime > keep_days * 86400:
            old.unlink()
    target = store / f"{uuid.uuid4().hex}.nii.gz"
    shutil.copyfile(source, target)
    seg.SetAttribute(PROPOSAL_ATTRIBUTE, str(target))
    model = report.get("model") or {}
    if model.get("id"):
        seg.SetAttribute(MODEL_ATTRIBUTE, f"{model['id']}@{model.get('version', '')}")
    return target


def proposal_of(seg: Any) -> "tuple[Optional[Path], Optional[str]]":
    """The remembered proposal file (None if none or gone) and the ``id@version`` of its model."""
    path = seg.GetAttribute(PROPOSAL_ATTRIBUTE)
    model = seg.GetAttribute(MODEL_ATTRIBUTE)
    found = Path(path) if path and Path(path).is_file() else None
    return found, (str(model) if model else None)


# ---------------------------------------------------------------- scene -> files -> cohort

def export_case(scene: Any, inputs: Mapping[str, Any], seg: Any, folder: Path) -> Dict[str, Path]:
    """Write the four volumes (``t1n``... ``.nrrd``) and the reviewed label map (``seg.nrrd``, T1c grid)."""
    from voxmmsd.sequences import SEQUENCE_NAMES, missing

    absent = [SEQUENCE_NAMES[k] for k in missing([k for k, node in inputs.items() if node is not None])]
    if absent:
        raise InputError(f"A cohort case needs all four sequences; select {', '.join(absent)} in the Inputs "
                         f"section.")
    if seg is None:
        raise InputError("Select the reviewed segmentation to add.")
    if seg.GetParentTransformNode() is not None:
        raise InputError(f"'{seg.GetName()}' is under a transform. Harden the transform and add it again.")
    files = scene_io.export_inputs(dict(inputs), Path(folder))
    label = reviewed_labels(scene, seg, inputs["t1c"])
    if not label.any():
        raise InputError(f"'{seg.GetName()}' holds no tumour voxel. Segment (or correct) the tumour first.")
    files["label"] = write_label_file(scene, label, inputs["t1c"], Path(folder) / "seg.nrrd")
    return files


def add_arguments(cohort: Path, files: Mapping[str, Path], proposal: Optional[Path], proposed_by: Optional[str],
                  register: str = "auto", skull_strip: str = "auto") -> List[str]:
    """``voxmmsd cohort add`` arguments for files written by :func:`export_case`."""
    args = ["cohort", "add", str(cohort)]
    from voxmmsd.sequences import SEQUENCES

    for key in SEQUENCES:
        args += [f"--{key}", str(files[key])]
    args += ["--seg", str(files["label"]), "--labels", "brats2023", "--source", SOURCE,
             "--register", register, "--skull-strip", skull_strip, "--progress", "json"]
    if proposal is not None:
        args += ["--proposal", str(proposal), "--proposal-labels", "brats2023"]
    if proposed_by:
        args += ["--proposed-by", proposed_by]
    return args


class CohortAddJob:
    """Add the reviewed segmentation ``seg`` of the case ``inputs`` to the cohort ``cohort``: files written
    here, the engine's ``voxmmsd cohort add`` as a process. :meth:`poll` from a timer or :meth:`run`;
    the temporary files go whatever the outcome, and the scene is never changed."""

    def __init__(self, scene: Any, inputs: Mapping[str, Any], seg: Any, cohort: Path, *,
                 python: Optional[str] = None, env: Optional[Mapping[str, str]] = None,
                 temp_root: Optional[Path] = None, register: str = "auto", skull_strip: str = "auto",
                 on_line: Optional[Callable[[str], None]] = None) -> None:
        self.scene, self.inputs, self.seg, self.cohort = scene, dict(inputs), seg, Path(cohort)
        self.python, self.env, self.temp_root = python, env, temp_root
        self.register, self.skull_strip, self.on_line = register, skull_strip, on_line
        self.state = EventState()
        self.status = "pending"
        self.error = ""
        self.case_id = ""
        self.log: List[str] = []
        self.process: Optional[EngineProcess] = None
        self.work_dir: Optional[Path] = None

    @property
    def done(self) -> bool:
        return self.status in ("finished", "failed", "cancelled")

    def start(self) -> "CohortAddJob":
        self.work_dir = Path(tempfile.mkdtemp(prefix="voxmmsd-cohort-",
                                              dir=str(self.temp_root) if self.temp_root else None))
        try:
            files = export_case(self.scene, self.inputs, self.seg, self.work_dir)
            proposal, model = proposal_of(self.seg)
            args = add_arguments(self.cohort, files, proposal, model, self.register, self.skull_strip)
            self.process = EngineProcess(engine_command(args, self.python), env=engine_environment(self.env, "cpu"),
                                         cwd=self.work_dir).start()
        except BaseException:
            self._cleanup()
            self.status = "failed"
            raise
        self.status = "running"
        return self

    def poll(self) -> bool:
        if self.status != "running" or self.process is None:
            return self.done
        for kind, value in self.process.poll():
            if kind == "line":
                line = str(value)
                if self.state.feed_line(line) is None:
                    self.log.append(line)
                if self.on_line is not None:
                    self.on_line(line)
            elif kind == "exit":
                self._finish(int(value))  # type: ignore[arg-type]
                break
        return self.done

    def run(self, timeout: Optional[float] = None) -> str:
        if self.status == "pending":
            self.start()
        return run_to_end(self, timeout, "adding the case")

    def cancel(self) -> None:
        if self.done:
            return
        if self.process is not None:
            self.process.cancel()
        self.status = "cancelled"
        self._cleanup()

    def _finish(self, returncode: int) -> None:
        if self.process is not None and self.process.cancelled:
            return
        if returncode == 0 and self.state.outcome == "finished":
            self.status = "finished"
            self.case_id = str(self.state.outputs.get("case_id", ""))
        else:
            self.status = "failed"
            last = next((line.strip() for line in reversed(self.log) if line.strip()), "")
            self.error = self.state.error or last or f"the engine exited with code {returncode}"
        self._cleanup()

    def _cleanup(self) -> None:
        if self.work_dir is not None and self.work_dir.exists():
            shutil.rmtree(self.work_dir, ignore_errors=True)
