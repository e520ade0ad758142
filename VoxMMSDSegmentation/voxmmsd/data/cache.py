"""A cache of preprocessed cases, built once and memory-mapped by training.

Layout: ``CACHE/<settings-hash>/<case>.image.npy`` (uint8, ``(C, z, y, x)``, the
[0, 1] scaled image times 255), ``<case>.label.npy`` (uint8 ``(z, y, x)``, internal
BraTS 2023 convention) and ``<case>.json`` (source fingerprint, spacing, crop box). Images
and labels are on the canonical axes (:mod:`voxmmsd.io.orientation`), as inference gives them
to the network; the crop box is on those axes too.
The settings hash covers the preprocessing settings and the cache format version, so
changing a setting builds a new cache beside the old one. A case whose source files
changed (size or modification time) is rebuilt. Every file is written atomically.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from voxmmsd.errors import InputError
from voxmmsd.io.atomic import atomic_path, write_json
from voxmmsd.io.discovery import CaseFiles, DataSet
from voxmmsd.io.geometry import Geometry
from voxmmsd.io.labels import ambiguous_labels, detect_convention, to_internal
from voxmmsd.io.orientation import reorientation, to_canonical
from voxmmsd.jobs.events import EventWriter
from voxmmsd.preprocessing import PreprocessConfig, prepare, prepare_label

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


@dataclass
class CachedCase:
    """One preprocessed case; ``image`` and ``label`` are read-only memory maps."""

    case_id: str
    image: np.ndarray
    label: Optional[np.ndarray]
    spacing: tuple
    meta: Dict[str, Any] = field(default_factory=dict)

    def float_image(self) -> np.ndarray:
        return self.image.astype(np.float32) / 255.0


def settings_key(cfg: PreprocessConfig, with_labels: bool) -> str:
    blob = json.dumps({"v": FORMAT_VERSION, "pre": cfg.to_dict(), "labels": with_labels}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def fingerprint(files: CaseFiles, with_labels: bool) -> Dict[str, Any]:
    """Size and modification time of every source file (a change triggers a rebuild)."""
    out = {}
    paths = dict(files.sequences)
    if with_labels and files.label is not None:
        paths["label"] = files.label
    for key, p in sorted(paths.items()):
        st = os.stat(p)
        out[key] = [str(Path(p).resolve()), st.st_size, int(st.st_mtime)]
    return out


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


def _open_npy(path: Path) -> np.ndarray:
    try:
        return np.load(str(path), mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise InputError(f"The preprocessing cache file {path} is damaged ({exc}). Delete the folder "
                         f"{path.parent} and run again to rebuild it.") from None


def _build_one(files: CaseFiles, folder: Path, cfg: PreprocessConfig, label_convention: Optional[str]) -> None:
    from voxmmsd.io.reader import load_case  # SimpleITK only when a case must be (re)built

    case = load_case(files, with_label=label_convention is not None)
    image_c, turn = to_canonical(case.image, case.geometry)  # the orientation inference gives the network
    prepared = prepare(image_c, turn.canonical.spacing, cfg)
    image = np.round(prepared.image * 255.0).astype(np.uint8)
    meta: Dict[str, Any] = {
        "case_id": files.case_id,
        "source": fingerprint(files, label_convention is not None),
        "spacing": list(cfg.spacing or turn.canonical.spacing),
        "box": [list(b) for b in prepared.box],
        "full_shape": list(prepared.full_shape),
        "shape": list(image.shape),
        "sequences": case.sequences,
        "geometry": case.geometry.to_dict(),
        "orientation": turn.describe(),
    }
    if case.label is not None and label_convention is not None:
        conv = label_convention
        values = [int(v) for v in np.unique(case.label)]
        if conv == "auto":
            if {3, 4} <= set(values):
                raise ambiguous_labels(files.label, values)
            conv = detect_convention(values) or "brats2023"
        internal = to_internal(turn.apply(case.label), conv, files.label)
        _save_npy(folder / f"{files.case_id}.label.npy", prepare_label(internal, prepared))
        meta["label_convention"] = conv
    _save_npy(folder / f"{files.case_id}.image.npy", image)
    write_json(folder / f"{files.case_id}.json", meta)


def _up_to_date(files: CaseFiles, folder: Path, with_labels: bool) -> bool:
    meta_path = folder / f"{files.case_id}.json"
    if not meta_path.exists() or not (folder / f"{files.case_id}.image.npy").exists():
        return False
    try:
        meta = json.loads(meta_path.read_text())
    except ValueError:
        return False
    if "orientation" not in meta and not _canonical(meta.get("geometry")):
        return False  # built before the canonical orientation (voxmmsd.io.orientation), from a turned grid
    return bool(meta.get("source") == json.loads(json.dumps(fingerprint(files, with_labels))))


def _canonical(geometry: Any) -> bool:
    try:
        return reorientation(Geometry.from_dict(geometry)).is_identity
    except (KeyError, TypeError, ValueError):
        return False


def build_cache(dataset: DataSet, cache_dir: Path, cfg: PreprocessConfig,
                label_convention: Optional[str] = "auto", events: Optional[EventWriter] = None,
                show_progress: bool = True) -> List[CachedCase]:
    """Preprocess every case of ``dataset`` into ``cache_dir`` (skipping up-to-date ones); return them.

    ``label_convention``: ``"auto"`` (detect per case), ``"brats2023"``, ``"legacy"``, or None to ignore labels.
    """
    with_labels = label_convention is not None
    folder = Path(cache_dir) / settings_key(cfg, with_labels)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "settings.json", {"format": FORMAT_VERSION, "preprocessing": cfg.to_dict(),
                                          "labels": with_labels})
    todo = [c for c in dataset.cases if not _up_to_date(c, folder, with_labels)]
    if todo:
        log.info("preprocessing %d of %d case(s) into %s", len(todo), len(dataset.cases), folder)
    bar = None
    if show_progress and todo:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc="preprocessing", unit="case")
    for i, files in enumerate(todo):
        if events is not None:
            events.emit("preprocess", iteration=i, total=len(todo), message=files.case_id)
        _build_one(files, folder, cfg, label_convention)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    if events is not None and todo:
        events.emit("preprocess", iteration=len(todo), total=len(todo), message="done")
    write_json(folder / "manifest.json", {"cases": [c.case_id for c in dataset.cases]})
    return [open_case(folder, c.case_id) for c in dataset.cases]


def open_case(folder: Path, case_id: str) -> CachedCase:
    meta_path = folder / f"{case_id}.json"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"The preprocessing cache entry {meta_path} is damaged ({exc}). Delete the folder "
                         f"{folder} and run again to rebuild it.") from None
    image = _open_npy(folder / f"{case_id}.image.npy")
    if list(image.shape) != meta.get("shape") or image.dtype != np.uint8:
        raise InputError(f"The preprocessing cache file {folder / (case_id + '.image.npy')} does not match its "
                         f"record. Delete the folder {folder} and run again to rebuild it.")
    label_path = folder / f"{case_id}.label.npy"
    label = _open_npy(label_path) if label_path.exists() else None
    if label is not None and tuple(label.shape) != tuple(image.shape[1:]):
        raise InputError(f"The preprocessing cache file {label_path} does not match its image. Delete the "
                         f"folder {folder} and run again to rebuild it.")
    return CachedCase(case_id, image, label, tuple(meta["spacing"]), meta)


def load_cache(cache_dir: Path) -> List[CachedCase]:
    """Open a built cache folder (the ``<settings-hash>`` folder, or its parent if it holds one)."""
    folder = Path(cache_dir)
    if not (folder / "manifest.json").exists():
        subs = [p for p in folder.iterdir() if (p / "manifest.json").exists()] if folder.is_dir() else []
        if len(subs) != 1:
            raise InputError(f"No preprocessing cache in {cache_dir}. Build it by running the job on a data set.")
        folder = subs[0]
    try:
        ids = json.loads((folder / "manifest.json").read_text())["cases"]
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"The cache manifest {folder / 'manifest.json'} is damaged ({exc}). Delete {folder} "
                         f"and run again.") from None
    return [open_case(folder, cid) for cid in ids]


def is_cache_folder(path: Path) -> bool:
    """Whether ``path`` is a built cache folder (the ``<settings-hash>`` level), usable as ``--data``."""
    p = Path(path)
    return (p / "settings.json").is_file() and (p / "manifest.json").is_file()


def open_prepared(folder: Path, cfg: PreprocessConfig, require_labels: bool = False) -> List[CachedCase]:
    """The cases of a built cache folder given as the data set (e.g. on a machine without the images).

    The cache must have been built with the same preprocessing settings; with ``require_labels``
    only labelled cases are returned (and at least one must exist).
    """
    folder = Path(folder)
    try:
        settings = json.loads((folder / "settings.json").read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"The cache settings {folder / 'settings.json'} are damaged ({exc}).") from None
    if settings.get("preprocessing") != json.loads(json.dumps(cfg.to_dict())):
        raise InputError(f"The prepared cache {folder} was built with preprocessing {settings.get('preprocessing')}, "
                         f"but this run asks for {cfg.to_dict()}. Use the same settings or the original images.")
    cases = load_cache(folder)
    if require_labels:
        cases = [c for c in cases if c.label is not None]
        if not cases:
            raise InputError(f"The prepared cache {folder} holds no labelled case.")
    return cases
