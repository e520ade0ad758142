"""Add a reviewed case to a cohort: checked, prepared like a segmentation input, written atomically.

The four sequences are read as ``voxmmsd segment`` reads an exam (:func:`voxmmsd.exam.load.load_exam`):
a sequence on another grid is registered onto T1c, a head that is not skull-stripped gets brain
extraction. What the network would see is what the cohort keeps: a sequence that needed neither is
copied voxel for voxel (same values, type and grid), one that did is written as prepared on the T1c
grid. The reviewed segmentation must lie on the T1c grid (the reference grid is kept, never
resampled); its labels are converted to BraTS 2023. The case is written into ``COHORT/.incoming/``
and renamed into ``COHORT/cases/`` only when complete, so a failure leaves nothing behind.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np
import SimpleITK as sitk

from voxmmsd.cohort import layout
from voxmmsd.cohort.edits import edit_statistics, summary_text, was_edited
from voxmmsd.errors import InputError
from voxmmsd.io.discovery import CaseFiles, check_sequences
from voxmmsd.io.geometry import Geometry
from voxmmsd.io.labels import BRATS2023, volumes_ml
from voxmmsd.io.reader import Case, read_image
from voxmmsd.sequences import SEQUENCE_NAMES, SEQUENCES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AddOptions:
    """How a case is read: as ``voxmmsd segment`` would (``register``/``skull_strip``: auto | on | off)."""

    register: str = "auto"
    skull_strip: str = "auto"
    label_convention: str = "auto"  # of the segmentation file: auto | brats2023 | legacy
    proposal_convention: str = "auto"  # of the proposal file
    device: str = "auto"  # for brain extraction


def prepare_exam(files: CaseFiles, options: AddOptions) -> Tuple[Case, Dict[str, sitk.Image]]:
    """The exam on its T1c grid, and the image to keep per sequence (the file's own where nothing was done
    to it, else the prepared one)."""
    from voxmmsd.exam.load import ExamOptions, load_exam

    check_sequences(files, fix="A cohort case needs all four sequences: load or give the missing image(s).")
    case = load_exam(files, ExamOptions(register=options.register, skull_strip=options.skull_strip,
                                        device=options.device, qc=False))
    keep: Dict[str, sitk.Image] = {}
    for seq in SEQUENCES:
        if seq not in case.resampled and case.brain_mask is None:
            keep[seq] = read_image(files.sequences[seq], SEQUENCE_NAMES[seq])
        else:
            keep[seq] = case.geometry.apply(sitk.GetImageFromArray(case.channel(seq)))
    return case, keep


def read_label_on(path: Path, geometry: Geometry, convention: str, what: str) -> Tuple[np.ndarray, str]:
    """A label map that must lie on ``geometry``, as internal (BraTS 2023) labels, and the convention found."""
    from voxmmsd.metrics.evaluate import load_label

    label, found_geometry, used = load_label(Path(path), convention, what)
    if not found_geometry.same_as(geometry, tol=1e-3):
        raise InputError(f"The {what} {path} ({found_geometry.describe()}) is not on the T1c image's grid "
                         f"({geometry.describe()}). A cohort keeps the reference grid: export the segmentation "
                         f"on the T1c volume's geometry (Slicer: the T1c volume as reference), or resample it "
                         f"with nearest-neighbour interpolation onto the T1c image first.")
    return label, used


def add_case(root: Path, files: CaseFiles, *, proposal: Optional[Path] = None,
             proposed_by: Optional[Mapping[str, Any]] = None, source: str = "command line",
             options: AddOptions = AddOptions(), events: Any = None) -> Dict[str, Any]:
    """Add the case ``files`` (four sequences and the reviewed segmentation ``files.label``) to the cohort at
    ``root`` (created in a new or empty folder). ``proposal``: the model's unedited segmentation (for the edit
    statistics); ``proposed_by``: the model that made it (``{"id", "version"}``). Returns the ``case.json``.
    """
    if files.label is None:
        raise InputError(f"Case {files.case_id!r} has no segmentation. Give the reviewed segmentation "
                         f"(--seg FILE, or a seg file in the case folder).")
    cohort = layout.open_cohort(root, create=True)
    emit = events.emit if events is not None else (lambda *a, **k: None)
    emit("cohort", "start", iteration=0, total=3, message="reading the case")
    case, images = prepare_exam(files, options)
    label, convention = read_label_on(files.label, case.geometry, options.label_convention, "segmentation")
    if not label.any():
        raise InputError(f"The segmentation {files.label} is empty (no tumour label). A cohort case needs the "
                         f"reviewed tumour; segment it first.")
    before = None
    if proposal is not None:
        before, _ = read_label_on(proposal, case.geometry, options.proposal_convention, "proposed segmentation")
    emit("cohort", "progress", iteration=1, total=3, message="checked")
    voxel_ml = case.geometry.voxel_volume_ml
    stats = edit_statistics(before, label, voxel_ml)
    layout.clean_incoming(cohort)
    case_id = layout.new_case_id(layout.case_ids(cohort))
    record = {
        "case_id": case_id,
        "created": layout.now_iso(),
        "source": str(source),
        "proposed_by": dict(proposed_by) if proposed_by else None,
        "edited": was_edited(stats, before is not None),
        "edits": stats,
        "volumes_ml": {k: round(v, 3) for k, v in volumes_ml(label, voxel_ml).items()},
        "label_convention": BRATS2023,
        "label_convention_given": convention,
        "grid": case.geometry.to_dict(),
        "preparation": {"registered_or_resampled": sorted(case.resampled),
                        "brain_extraction": case.brain_mask is not None},
        "files": {k: p.name for k, p in layout.case_files(Path("."), case_id).items()},
    }
    _write_atomically(cohort, case_id, images, label, case.geometry, record)
    emit("cohort", "done", iteration=3, total=3, message=f"added {case_id}",
         outputs={"case_id": case_id, "folder": str(cohort.case_dir(case_id))})
    log.info("added %s to %s (%s)", case_id, cohort.root, summary_text(record))
    return record


def _write_atomically(cohort: layout.Cohort, case_id: str, images: Mapping[str, sitk.Image], label: np.ndarray,
                      geometry: Geometry, record: Dict[str, Any]) -> None:
    from voxmmsd.io.atomic import ensure_writable_dir, write_json
    from voxmmsd.io.writer import write_label_nifti

    ensure_writable_dir(cohort.incoming_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f"{case_id}.", dir=str(cohort.incoming_dir)))
    try:
        paths = layout.case_files(tmp, case_id)
        for seq in SEQUENCES:
            sitk.WriteImage(images[seq], str(paths[seq]), True)
        write_label_nifti(label, geometry, paths["label"])
        write_json(tmp / layout.CASE_FILE, record)
        os.chmod(tmp, 0o755)
        ensure_writable_dir(cohort.cases_dir)
        os.rename(tmp, cohort.case_dir(case_id))
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
