"""Write a prediction: NIfTI label map, Slicer ``.seg.nrrd``, ``report.json`` and a QC picture.

The files of a result are written at the same time (one thread each) into a hidden staging folder
inside the output folder, and moved into place only when every one of them is complete; ``report.json`` comes last,
so its presence marks a finished case. A previous result's ``report.json`` is removed
first and its other files that the new result does not have (e.g. ``qc.png`` with
``--no-qc``) are removed too: no stale file of an older result stays beside a new one.

:func:`claim_output` guards a result folder for the whole read-compute-write: one writer
(:class:`~voxmmsd.io.lock.FolderLock`), no silent replacement of an existing result, enough
free disk space checked before any compute, stale staging folders cleaned, and a folder it
created removed again when the run fails. Result-named files that VoxMMSD did not write (no
``report.json`` of a result names them, no interrupted write of ours marked them:
:mod:`voxmmsd.io.results`) are the user's and are never replaced without ``--overwrite``.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence

from voxmmsd import __version__
from voxmmsd.errors import InputError
from voxmmsd.infer.postprocess import to_convention
from voxmmsd.infer.qc import write_qc_png
from voxmmsd.io.atomic import ensure_writable_dir, write_json
from voxmmsd.io.labels import BRATS2023, LABEL_TABLE, LabelInfo
from voxmmsd.io.parallel import map_ordered
from voxmmsd.io.png import write_png
from voxmmsd.io.results import REPORT, WRITING, tool_written
from voxmmsd.io.writer import write_label_nifti, write_seg_nrrd

log = logging.getLogger(__name__)

SEGMENTATION_NIFTI = "segmentation.nii.gz"
SEGMENTATION_NRRD = "segmentation.seg.nrrd"
QC_PNG = "qc.png"
BRAIN_MASK = "brain_mask.nii.gz"  # when brain extraction ran
EXAM_QC_PNG = "registration_qc.png"  # when registration or brain extraction ran
OUTPUT_FILES = (SEGMENTATION_NIFTI, SEGMENTATION_NRRD, QC_PNG, BRAIN_MASK, EXAM_QC_PNG, REPORT)
STAGING_PREFIX = ".staging-"
#: bytes the QC picture and the report may take, on top of the label maps
_FIXED_BYTES = 4 << 20


def existing_result(out_dir: Path) -> List[str]:
    """Names of result files already in ``out_dir``."""
    out_dir = Path(out_dir)
    return [n for n in OUTPUT_FILES if (out_dir / n).exists()]


def clean_staging(out_dir: Path) -> int:
    """Remove staging folders left by an interrupted writer (call with the folder's lock held)."""
    n = 0
    for p in Path(out_dir).glob(STAGING_PREFIX + "*"):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
            n += 1
    if n:
        log.info("removed %d stale staging folder(s) in %s", n, out_dir)
    return n


def bytes_needed(shape_zyx: Sequence[int]) -> int:
    """An upper bound on the disk space the outputs of a case of this size take (uncompressed label maps twice)."""
    voxels = 1
    for s in shape_zyx:
        voxels *= int(s)
    return 2 * voxels + _FIXED_BYTES


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


def check_free_space(out_dir: Path, needed: int) -> None:
    """Refuse before any compute when the disk of ``out_dir`` has less than ``needed`` bytes free."""
    free = shutil.disk_usage(str(out_dir)).free
    if free < needed:
        raise InputError(f"Not enough disk space for the result in {out_dir}: {_mb(free)} free, about {_mb(needed)} "
                         f"needed. Free some space or choose another --out.")


def disk_full_error(out_dir: Path, needed: Optional[int] = None) -> InputError:
    need = f" about {_mb(needed)} are needed;" if needed else ""
    return InputError(f"The disk is full: no space left while writing into {out_dir};{need} nothing was replaced "
                      f"(the previous result, if any, is as it was). Free some space and run again.")


def _remove_if_empty(folder: Path) -> None:
    try:
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    except OSError:
        pass


def check_output_apart(out_dir: Path, files: Any) -> None:
    """Refuse an output folder that is the case folder itself, or that holds an input under a result's name:
    the results would be mixed with the images (and a result file could replace an input)."""
    out = Path(out_dir).resolve()
    folder = getattr(files, "folder", None)
    if folder is not None and Path(folder).resolve() == out:
        raise InputError(f"--out {out_dir} is the case folder itself: the results would be written among the images "
                         f"(and read back as input next time). Choose another folder, e.g. --out "
                         f"{Path(folder).parent / (Path(folder).name + '-segmentation')}.")
    for path in list(getattr(files, "sequences", {}).values()) + [getattr(files, "label", None)]:
        if path is not None and Path(path).resolve().parent == out and Path(path).name in OUTPUT_FILES:
            raise InputError(f"The input {path} has the name of a result file in --out {out_dir}: it would be "
                             f"replaced. Choose another --out.")


@contextlib.contextmanager
def claim_output(out_dir: Path, overwrite: bool = False, purpose: str = "segmentation",
                 option: str = "--overwrite") -> Iterator[Path]:
    """Hold ``out_dir`` for one result: lock it, refuse an existing result unless ``overwrite`` (the command's
    ``option`` says so), and refuse any result-named file VoxMMSD did not write (:mod:`voxmmsd.io.results`)
    unless ``overwrite``; clean stale staging folders; if the folder did not exist and the run fails, remove
    it again."""
    from voxmmsd.io.lock import FolderLock

    out_dir = Path(out_dir)
    created = not out_dir.exists()
    ensure_writable_dir(out_dir)
    ok = False
    try:
        with FolderLock(out_dir, purpose):
            found = existing_result(out_dir)
            ours = tool_written(out_dir)
            foreign = [n for n in found if n not in ours]
            if foreign and not overwrite:
                raise InputError(f"{out_dir} holds {', '.join(foreign)}, which VoxMMSD did not write (no {REPORT} of "
                                 f"a result names them): they are kept. Give {option} to replace them, or choose "
                                 f"another --out.")
            if REPORT in ours and not overwrite:
                raise InputError(f"{out_dir} already holds a result ({', '.join(found)}). Give {option} to replace "
                                 f"it, or choose another --out.")
            if found and REPORT not in ours and not foreign:  # a write of ours was interrupted: nothing to keep
                log.warning("%s holds an unfinished result (%s, no %s); it is replaced", out_dir, ", ".join(found),
                            REPORT)
            clean_staging(out_dir)
            yield out_dir
            ok = True
    finally:
        if not ok:
            if out_dir.is_dir():
                clean_staging(out_dir)
            if created:
                _remove_if_empty(out_dir)


def software_versions() -> Dict[str, str]:
    """Versions of the libraries inference used (those importable without loading PyTorch)."""
    import importlib.metadata as md

    out = {"voxmmsd": __version__, "python": platform.python_version()}
    for pkg in ("numpy", "SimpleITK", "onnxruntime", "torch", "scipy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            continue
    return out


def warning_kind(message: str) -> str:
    """The ``kind`` of a plain warning message (``input`` when nothing more specific fits)."""
    m = message.lower()
    for kind, words in (("model_fallback", ("cross-validated better",)), ("missing_sequence", ("is missing",)),
                        ("not_skull_stripped", ("skull",)), ("thick_slices", ("slice", "anisotrop")),
                        ("uncertainty", ("confidence", "disagree"))):
        if any(w in m for w in words):
            return kind
    return "input"


def structured_warnings(prediction: Any) -> List[Dict[str, str]]:
    """``report.json`` warnings: ``[{"kind", "message"}]`` (the predictor's alerts keep their kind)."""
    kinds = {a["message"]: a["kind"] for a in getattr(prediction, "alerts", None) or []}
    return [{"kind": kinds.get(w) or warning_kind(w), "message": w} for w in prediction.warnings]


def qc_title(prediction: Any, model: Dict[str, str]) -> str:
    """The QC picture's title: case and model, and a LOW CONFIDENCE note when the predictor raised one."""
    title = f"{prediction.case_id}: {model.get('id', '')} {model.get('version', '')}"
    unsure = [a for a in getattr(prediction, "alerts", None) or [] if a.get("kind") == "uncertainty"]
    if unsure:
        low = (getattr(prediction, "uncertainty", None) or {}).get("low_confidence_fraction")
        share = f" ({100 * low:.0f}% of the tumour uncertain)" if low is not None else ""
        title += f" | LOW CONFIDENCE{share}: review before use"
    kinds = {a.get("kind") for a in getattr(prediction, "alerts", None) or []}
    if kinds & {"thick_slices", "voxel_size"}:
        title += " | THICK SLICES / VOXEL SIZE outside the training data: check slice by slice"
    if "not_skull_stripped" in kinds:
        title += " | NOT SKULL-STRIPPED"
    checks = getattr(prediction, "plausibility", None) or {}
    if checks.get("verdict") == "implausible":
        title += f" | IMPLAUSIBLE ({', '.join(checks.get('failed', []))}): do not use without review"
    elif checks.get("verdict") == "doubtful":
        title += f" | DOUBTFUL ({', '.join(checks.get('doubtful', []))}): review before use"
    return title


def build_report(prediction: Any, model: Dict[str, str], outputs: Dict[str, str], convention: str,
                 extra: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    report = {
        "case_id": prediction.case_id,
        "model": model,
        "volumes_ml": {k: round(float(v), 4) for k, v in prediction.volumes_ml.items()},
        "warnings": structured_warnings(prediction),
        "uncertainty": dict(getattr(prediction, "uncertainty", None) or {}),
        "plausibility": dict(getattr(prediction, "plausibility", None) or {}),
        "timings_s": {k: round(float(v), 3) for k, v in prediction.timings_s.items()},
        "software": software_versions(),
        "inputs": prediction.inputs,
        "outputs": outputs,
        "label_convention": convention,
        "run": prediction.run,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    report.update(extra or {})
    return report


def write_outputs(prediction: Any, out_dir: Path, model: Dict[str, str],
                  table: Iterable[LabelInfo] = LABEL_TABLE, convention: str = BRATS2023,
                  qc: bool = True, extra: Optional[Dict[str, Any]] = None,
                  label_map: bool = True) -> Dict[str, str]:
    """Write every output of ``prediction`` into ``out_dir``; return {kind: path}.

    Without ``label_map`` (a result refused as implausible) no label map is written: only
    ``report.json`` (with ``"refused": true``), the QC picture and the brain mask.

    A failure while staging leaves ``out_dir`` as it was (earlier complete outputs stay; nothing
    half-written); a full disk raises :class:`InputError` saying so. Once staged, the previous
    result is replaced as a whole: its ``report.json`` goes first and files the new result does not
    have are removed, so no stale file stays.
    """
    t0 = time.perf_counter()
    out_dir = ensure_writable_dir(Path(out_dir))
    try:
        return _write_outputs(prediction, out_dir, model, tuple(table), convention, qc, extra, t0, label_map)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise disk_full_error(out_dir, bytes_needed(prediction.label.shape)) from None
        raise


def _write_outputs(prediction: Any, out_dir: Path, model: Dict[str, str], table: tuple, convention: str,
                   qc: bool, extra: Optional[Dict[str, Any]], t0: float, label_map: bool = True) -> Dict[str, str]:
    # the .seg.nrrd keeps the internal values with their names; legacy only changes the NIfTI values
    stage = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=str(out_dir)))
    try:
        outputs: Dict[str, str] = {}
        jobs: List[Callable[[], Any]] = []  # independent files, written at once (zlib and ITK release the GIL)
        if label_map:
            jobs.append(lambda: write_label_nifti(to_convention(prediction.label, convention), prediction.geometry,
                                                  stage / SEGMENTATION_NIFTI))
            jobs.append(lambda: write_seg_nrrd(prediction.label, prediction.geometry, stage / SEGMENTATION_NRRD,
                                               table))
            outputs.update(segmentation=str(out_dir / SEGMENTATION_NIFTI), seg_nrrd=str(out_dir / SEGMENTATION_NRRD))
        else:
            extra = {**(extra or {}), "refused": True}
        if qc:
            title = qc_title(prediction, model) + ("" if label_map else " | REFUSED: no label map written")
            jobs.append(lambda: write_qc_png(stage / QC_PNG, prediction.reference_image, prediction.label,
                                             prediction.geometry.spacing, title, table))
            outputs["qc"] = str(out_dir / QC_PNG)
        if prediction.brain_mask is not None:
            jobs.append(lambda: write_label_nifti(prediction.brain_mask, prediction.geometry, stage / BRAIN_MASK))
            outputs["brain_mask"] = str(out_dir / BRAIN_MASK)
        if qc and prediction.exam_picture is not None:
            jobs.append(lambda: write_png(stage / EXAM_QC_PNG, prediction.exam_picture, {
                "Title": f"{prediction.case_id}: registration and brain mask",
                "Description": "Top row: reference (T1c) with the brain mask outline (yellow). Then one row per "
                               "sequence: reference magenta, sequence green (aligned = grey-white)."}))
            outputs["registration_qc"] = str(out_dir / EXAM_QC_PNG)
        map_ordered(lambda job: job(), jobs, name="voxmmsd-write")  # the first failure (in this order) raises
        outputs["report"] = str(out_dir / REPORT)
        timings = dict(prediction.timings_s)
        timings["write"] = time.perf_counter() - t0
        prediction.timings_s = timings
        report = build_report(prediction, model, outputs, convention, extra)
        write_json(stage / REPORT, report)
        # until the new report.json is in place, this marker says the result-named files are ours (interrupted)
        write_json(out_dir / WRITING, {"files": list(OUTPUT_FILES)})
        if (out_dir / REPORT).exists():
            os.remove(out_dir / REPORT)  # the old result is no longer complete from here on
        for name in OUTPUT_FILES:
            if (stage / name).exists():
                os.replace(stage / name, out_dir / name)
            elif (out_dir / name).exists():
                os.remove(out_dir / name)  # a file of the previous result the new one does not have
        os.remove(out_dir / WRITING)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return outputs
