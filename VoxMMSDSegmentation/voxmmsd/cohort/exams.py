"""Pre-training on a group's own unlabelled exams, prepared as segmentation inputs are.

``voxmmsd cohort pretrain --exams RAW --out RUN --model LIKE``:

1. every exam under ``RAW`` (a case folder per exam, any naming ``voxmmsd inspect`` recognises, DICOM
   series folders included) is read as ``voxmmsd segment`` reads it (:func:`voxmmsd.exam.load.load_exam`:
   sequences registered onto T1c where their grids differ, brain extraction where the head is not
   skull-stripped) and written to ``RUN/exams/<id>/`` in BraTS 2023 names, on the T1c grid. The ids are
   generated (``exam0001-…``); ``RUN/exams/exams.json`` maps a SHA-256 of each source folder's path to its
   id, so running again prepares only new exams and no name of a source folder is kept. An exam that
   cannot be read is listed with the reason and left out.
2. Vox-MMSD pre-training runs in ``RUN`` on the prepared exams, with the network and preprocessing of the
   model ``LIKE`` (so that its result can start a fine-tune of that model's shape):
   ``RUN/backbone.safetensors``, then ``voxmmsd cohort finetune ... --init RUN``.

Running the same command again resumes the pre-training from its last checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from pathlib import Path
from typing import Any, Dict, Iterable, Optional

from voxmmsd.errors import InputError, VoxMMSDError

log = logging.getLogger(__name__)

EXAMS = "exams"
INDEX = "exams.json"


def _key(folder: Path) -> str:
    return hashlib.sha256(str(Path(folder).resolve()).encode("utf-8")).hexdigest()


def prepare_exams(raw: Path, out: Path, options: Any, events: Any = None,
                  stop_file: Optional[Path] = None) -> Dict[str, Any]:
    """Prepare every exam of ``raw`` into ``out`` (see the module docstring); returns the index
    ``{"exams": {key: id}, "failed": {key: reason}, "stopped": bool}``. ``stop_file`` appearing stops
    between exams (the prepared ones are kept)."""
    import SimpleITK as sitk

    from voxmmsd.cohort.add import prepare_exam
    from voxmmsd.cohort.layout import case_files
    from voxmmsd.infer.batch import discover_cases
    from voxmmsd.io.atomic import ensure_writable_dir, write_json
    from voxmmsd.io.discovery import CaseFiles

    raw, out = Path(raw), Path(out)
    if not raw.is_dir():
        raise InputError(f"Exam folder not found: {raw}. Give the folder that holds one sub-folder per exam.")
    ensure_writable_dir(out)
    index_path = out / INDEX
    index: Dict[str, Any] = {"exams": {}, "failed": {}}
    if index_path.is_file():
        index = json.loads(index_path.read_text(encoding="utf-8"))
    entries = discover_cases(raw, exclude=[out])
    todo = [e for e in entries if isinstance(e, CaseFiles) and e.folder is not None
            and _key(e.folder) not in index["exams"]]
    index["stopped"] = False
    for i, files in enumerate(todo):
        if stop_file is not None and Path(stop_file).exists():
            index["stopped"] = True
            break
        key = _key(Path(files.folder))  # type: ignore[arg-type]
        exam_id = f"exam{len(index['exams']) + 1:04d}-{secrets.token_hex(3)}"
        try:
            _case, images = prepare_exam(files, options)
            folder = ensure_writable_dir(out / exam_id)
            paths = case_files(folder, exam_id)
            for seq, image in images.items():
                sitk.WriteImage(image, str(paths[seq]), True)
        except VoxMMSDError as exc:
            index["failed"][key] = str(exc).splitlines()[0]
            log.warning("exam %d/%d left out: %s", i + 1, len(todo), exc)
        else:
            index["exams"][key] = exam_id
            index["failed"].pop(key, None)
        write_json(index_path, index)
        if events is not None:
            events.emit("prepare", "progress", iteration=i + 1, total=len(todo),
                        message=f"prepared {len(index['exams'])} exam(s)")
    if not index["exams"] and not index["stopped"]:
        reasons = "; ".join(list(index["failed"].values())[:3]) or "no exam folder found"
        raise InputError(f"No exam of {raw} could be prepared for pre-training ({reasons}). Give a folder with one "
                         f"sub-folder per exam, each holding T1, T1c, T2 and FLAIR.")
    return index


def pretrain_on_exams(raw: Path, run_dir: Path, like: Optional[str], options: Any,
                      config_file: Optional[Path] = None, overrides: Iterable[str] = (),
                      max_iters: Optional[int] = None, device: str = "auto", stream: Any = None) -> int:
    """Prepare the exams of ``raw`` into ``RUN/exams`` and pre-train (or resume pre-training) in ``RUN``."""
    from voxmmsd.cohort.recipe import single_network
    from voxmmsd.io.lock import FolderLock
    from voxmmsd.jobs.config import merge
    from voxmmsd.jobs.events import EventWriter
    from voxmmsd.jobs.run_folder import RunFolder
    from voxmmsd.models.catalog import resolve_model
    from voxmmsd.pretrain.config import load_config
    from voxmmsd.pretrain.loop import run_pretraining

    run = RunFolder(Path(run_dir))
    model = resolve_model(like)
    with FolderLock(run.root, "preparing exams for pre-training"):
        with EventWriter(run.events) as events:
            events.emit("prepare", "start", iteration=0, total=0, message=f"preparing the exams of {raw}")
            index = prepare_exams(Path(raw), run.root / EXAMS, options, events, run.stop_file)
            if index["stopped"]:
                events.emit("prepare", "stopped", message=f"stopped while preparing the exams; run the same "
                                                          f"command again to continue ({run.root})")
                run.clear_stop_request()
                return 0
            events.emit("prepare", "message", message=f"{len(index['exams'])} exam(s) prepared, "
                                                      f"{len(index['failed'])} left out")
    if stream is not None:
        EventWriter(stream=stream).emit("prepare", "message", message=f"{len(index['exams'])} exam(s) prepared")
    shape = {"network": single_network(model.network), "preprocessing": dict(model.preprocessing.to_dict()),
             "data": {"root": str(run.root / EXAMS), "cache_dir": str(run.root / "cache")}}
    if run.has_checkpoint():
        return run_pretraining(None, run.root, resume=True, device=device, max_iters=max_iters, show_progress=False)
    cfg = load_config(config_file, list(overrides), base=shape)
    cfg = load_config(None, [], base=merge(cfg.to_dict(), {"data": shape["data"]}))
    return run_pretraining(cfg, run.root, resume=False, device=device, max_iters=max_iters, show_progress=False)

