"""Segment a folder of cases through the scene, one case at a time (Slicer batch mode).

Each case's volumes are loaded into the scene, segmented by a :class:`SegmentationJob`
(``voxmmsd segment`` for that case, so the engine's one path for a case,
``voxmmsd.infer.pipeline.segment_case``, with the same options record; the engine's outputs kept in
``OUT/<case_id>/``), the segmentation and its volumes table checked and saved, then every node of the
case is removed again.
``OUT/summary.csv`` lists every case with its status and volumes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional

from VoxMMSDSegmentationLib import scene as scene_io
from VoxMMSDSegmentationLib.commands import SegmentOptions
from VoxMMSDSegmentationLib.segmentation import FINISHED, REFUSED, REFUSED_EXIT_CODE, SegmentationJob

log = logging.getLogger(__name__)

SKIPPED = "skipped"  # already done in an earlier run (report.json present)


def load_volume(scene: Any, path: Path, name: str) -> Any:
    """A scalar volume node (with display node) read from ``path``."""
    import slicer
    from voxmmsd.errors import InputError

    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(path))
    storage.SetSingleFile(True)
    if not storage.ReadData(node):
        scene.RemoveNode(node)
        raise InputError(f"Could not read {path}. Check that it is a readable NIfTI/NRRD image.")
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    return node


def save_table_csv(table: Any, path: Path) -> Path:
    """Write a table node as CSV (through a storage node kept out of the scene)."""
    import slicer

    storage = slicer.vtkMRMLTableStorageNode()
    storage.SetFileName(str(path))
    if not storage.WriteData(table):
        raise OSError(f"could not write {path}")
    return path


@dataclass
class CaseResult:
    case_id: str
    status: str
    error: str = ""
    seconds: float = 0.0
    volumes_ml: Dict[str, float] = field(default_factory=dict)
    warnings: List[str] = field(default_factory=list)
    plausibility: str = ""  # the engine's verdict: plausible | doubtful | implausible

    def row(self) -> Dict[str, Any]:
        row: Dict[str, Any] = {"case_id": self.case_id, "status": self.status, "error": self.error,
                               "seconds": f"{self.seconds:.1f}", "warnings": " | ".join(self.warnings),
                               "plausibility": self.plausibility}
        for key in ("WT", "TC", "ET", "NETC", "SNFH", "RC"):
            row[key] = f"{self.volumes_ml[key]:.3f}" if key in self.volumes_ml else ""
        return row


def segment_case(scene: Any, sequences: Mapping[str, Path], case_id: str, out_dir: Path,
                 options: SegmentOptions, python: Optional[str] = None, env: Optional[Mapping[str, str]] = None,
                 timeout: Optional[float] = None, engine: Optional[List[str]] = None) -> CaseResult:
    """Load, segment, save and unload one case; the scene ends as it began."""
    before = set(scene_io.scene_node_ids(scene))
    try:
        nodes = {key: load_volume(scene, path, f"{case_id}_{key}") for key, path in sequences.items()}
        job = SegmentationJob(scene, nodes, options, python=python, engine=engine, env=env, output_dir=out_dir,
                              name=f"{case_id} segmentation")
        status = job.run(timeout=timeout)
        result = CaseResult(case_id, status, job.error, float(job.summary()["seconds"]), plausibility=job.verdict)
        if status == FINISHED and job.result is not None:
            result.volumes_ml = dict(job.result.volumes_ml)
            result.warnings = list(job.result.warnings)
            save_table_csv(job.result.table, Path(out_dir) / "volumes.csv")
        elif status == REFUSED:  # report.json only (the engine wrote no label map): its volumes and warnings
            result.volumes_ml = {str(k): float(v) for k, v in (job.report.get("volumes_ml") or {}).items()}
            result.warnings = list(job.state.warnings)
        return result
    except Exception as exc:  # one bad case must not stop the batch
        log.exception("case %s failed", case_id)
        return CaseResult(case_id, "failed", str(exc))
    finally:
        for node_id in [i for i in scene_io.scene_node_ids(scene) if i not in before]:
            node = scene.GetNodeByID(node_id)
            if node is not None:
                scene.RemoveNode(node)


def segment_folder(scene: Any, data: Path, out: Path, options: SegmentOptions, python: Optional[str] = None,
                   env: Optional[Mapping[str, str]] = None, timeout: Optional[float] = None,
                   report: Optional[Callable[[CaseResult], None]] = None,
                   engine: Optional[List[str]] = None) -> List[CaseResult]:
    """Segment every case of the data set folder ``data`` into ``out/<case_id>/``; write ``summary.csv``.

    Discovery and the summary are the engine's (``voxmmsd.infer.batch.discover_cases``,
    ``voxmmsd.infer.summary.write_summary``): a folder that cannot be a case is a failed row with
    the reason, and a case already done (``report.json``) is skipped, as in the engine batch.
    """
    from voxmmsd.infer.batch import _from_report, discover_cases, is_done
    from voxmmsd.infer.summary import CaseResult as Unusable
    from voxmmsd.infer.summary import write_summary
    from voxmmsd.io.atomic import ensure_writable_dir

    entries = discover_cases(Path(data), exclude=[Path(out)])
    ensure_writable_dir(Path(out))
    results: List[CaseResult] = []
    for entry in entries:
        if isinstance(entry, Unusable):  # not a usable case folder: listed with the reason
            result = CaseResult(entry.case_id, "failed", entry.error)
        elif is_done(Path(out), entry.case_id):
            done = _from_report(Path(out), entry.case_id)
            result = CaseResult(entry.case_id, REFUSED if done.status == "refused" else SKIPPED, "", 0.0,
                                done.volumes_ml, done.warnings, done.plausibility)
        else:
            result = segment_case(scene, entry.sequences, entry.case_id, Path(out) / entry.case_id, options, python,
                                  env, timeout, engine)
        results.append(result)
        if report is not None:
            report(result)
    write_summary(Path(out) / "summary.csv", results)
    return results


def exit_code(results: List[CaseResult]) -> int:
    """0 when every case finished (or was already done); 1 when any failed (or there were none); else 3
    when a case was refused as implausible (``on_implausible="refuse"``)."""
    if not results or any(r.status not in (FINISHED, SKIPPED, REFUSED) for r in results):
        return 1
    return REFUSED_EXIT_CODE if any(r.status == REFUSED for r in results) else 0
