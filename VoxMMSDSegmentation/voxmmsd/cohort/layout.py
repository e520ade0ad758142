"""The cohort folder: its layout, generated case ids, ``case.json``, listing and removal.

::

    COHORT/cohort.json                       {"format": "voxmmsd-cohort", "version": 1, "created": ...}
    COHORT/cases/<case_id>/<case_id>-t1n.nii.gz   T1 native      (BraTS 2023 names)
    COHORT/cases/<case_id>/<case_id>-t1c.nii.gz   T1 with contrast: the reference grid
    COHORT/cases/<case_id>/<case_id>-t2w.nii.gz   T2-weighted    (on the T1c grid)
    COHORT/cases/<case_id>/<case_id>-t2f.nii.gz   T2-FLAIR       (on the T1c grid)
    COHORT/cases/<case_id>/<case_id>-seg.nii.gz   the reviewed segmentation, BraTS 2023 labels, T1c grid
    COHORT/cases/<case_id>/case.json              provenance: proposing model, edits per segment, date
    COHORT/.incoming/                             cases being written (renamed into cases/ when complete)

``COHORT/cases`` is an ordinary labelled data set: ``voxmmsd finetune --data COHORT/cases`` trains on it.
Case ids are generated (``case0007-3fa2c1``: a running number and a random suffix); they never
derive from a patient's name, a file name or any DICOM identifier, and nothing in the cohort records one.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List

from voxmmsd.errors import InputError
from voxmmsd.io.atomic import ensure_writable_dir, write_json
from voxmmsd.sequences import SEQUENCES

log = logging.getLogger(__name__)

FORMAT = "voxmmsd-cohort"
FORMAT_VERSION = 1
COHORT_FILE = "cohort.json"
CASES = "cases"
INCOMING = ".incoming"
CASE_FILE = "case.json"
LABEL = "seg"
EXTENSION = ".nii.gz"
SEQUENCE_KEYS = SEQUENCES
CASE_ID = re.compile(r"^case(\d{4,})-[0-9a-f]{6}$")
#: what a folder may hold besides a cohort's own entries and still become a cohort
_IGNORABLE = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})


def now_iso() -> str:
    """The current UTC time, ISO 8601 to the second (``2025-03-01T09:30:00Z``)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass(frozen=True)
class Cohort:
    """The paths of one cohort folder."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def file(self) -> Path:
        return self.root / COHORT_FILE

    @property
    def cases_dir(self) -> Path:
        return self.root / CASES

    @property
    def incoming_dir(self) -> Path:
        return self.root / INCOMING

    def case_dir(self, case_id: str) -> Path:
        return self.cases_dir / check_case_id(case_id)

    def case_files(self, case_id: str) -> Dict[str, Path]:
        """Sequence key (and ``label``) -> file of a case, in BraTS 2023 names."""
        return case_files(self.case_dir(case_id), case_id)


def case_files(folder: Path, case_id: str) -> Dict[str, Path]:
    out = {key: Path(folder) / f"{case_id}-{key}{EXTENSION}" for key in SEQUENCE_KEYS}
    out["label"] = Path(folder) / f"{case_id}-{LABEL}{EXTENSION}"
    return out


def check_case_id(case_id: str) -> str:
    """``case_id`` if it is a generated cohort case id, else :class:`InputError` (never a path)."""
    if not CASE_ID.match(str(case_id)):
        raise InputError(f"{case_id!r} is not a cohort case id (they look like case0007-3fa2c1); see "
                         f"'voxmmsd cohort list COHORT'.")
    return str(case_id)


def new_case_id(existing: Iterable[str]) -> str:
    """The next case id: one more than the highest running number, and a random suffix (two people adding
    at once never collide)."""
    numbers = [int(m.group(1)) for m in (CASE_ID.match(c) for c in existing) if m]
    return f"case{max(numbers, default=0) + 1:04d}-{secrets.token_hex(3)}"


def _is_cohort(root: Path) -> bool:
    try:
        data = json.loads((root / COHORT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("format") == FORMAT


def open_cohort(root: Path, create: bool = False) -> Cohort:
    """The cohort at ``root``; with ``create``, a new one in a new or empty folder.

    A folder that holds other things is never turned into a cohort (nothing the user keeps
    there is touched): :class:`InputError` asks for a new or empty folder.
    """
    cohort = Cohort(Path(root))
    if _is_cohort(cohort.root):
        if int(json.loads(cohort.file.read_text(encoding="utf-8")).get("version", 0)) > FORMAT_VERSION:
            raise InputError(f"{cohort.file} was written by a newer VoxMMSD (cohort format newer than "
                             f"{FORMAT_VERSION}). Update VoxMMSD to use it.")
        return cohort
    if not create:
        why = "does not exist" if not cohort.root.exists() else f"has no {COHORT_FILE}"
        raise InputError(f"{cohort.root} is not a VoxMMSD cohort ({why}). Create one by adding a case: "
                         f"'voxmmsd cohort add {cohort.root} CASE_FOLDER', or the module's 'Add to cohort'.")
    if cohort.root.exists() and not cohort.root.is_dir():
        raise InputError(f"{cohort.root} is a file, not a folder. Choose a new or empty folder for the cohort.")
    if cohort.root.is_dir():
        others = sorted(p.name for p in cohort.root.iterdir() if p.name not in _IGNORABLE)
        if others:
            raise InputError(f"{cohort.root} is not empty ({', '.join(others[:5])}) and is not a VoxMMSD cohort. "
                             f"Choose a new or empty folder for the cohort; nothing was written.")
    ensure_writable_dir(cohort.root)
    write_json(cohort.file, {"format": FORMAT, "version": FORMAT_VERSION, "created": now_iso()})
    ensure_writable_dir(cohort.cases_dir)
    log.info("new cohort in %s", cohort.root)
    return cohort


def case_ids(cohort: Cohort) -> List[str]:
    """The ids of the complete cases (a folder with ``case.json``), in order of their running number."""
    if not cohort.cases_dir.is_dir():
        return []
    found = [p.name for p in cohort.cases_dir.iterdir()
             if p.is_dir() and CASE_ID.match(p.name) and (p / CASE_FILE).is_file()]
    return sorted(found, key=lambda c: (int(CASE_ID.match(c).group(1)), c))  # type: ignore[union-attr]


def read_case(cohort: Cohort, case_id: str) -> Dict[str, Any]:
    """The ``case.json`` of one case; :class:`InputError` naming the file if it is missing or damaged."""
    path = cohort.case_dir(case_id) / CASE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"Case {case_id} is not in the cohort {cohort.root} (no {path}).") from None
    except ValueError as exc:
        raise InputError(f"{path} is damaged (not valid JSON: {exc}). Remove the case and add it again.") from None
    if not isinstance(data, dict) or data.get("case_id") != case_id:
        raise InputError(f"{path} does not describe case {case_id}. Remove the case and add it again.")
    return data


def list_cases(cohort: Cohort) -> List[Dict[str, Any]]:
    """``case.json`` of every case; a damaged one is listed with its ``error`` instead of stopping the list."""
    out = []
    for cid in case_ids(cohort):
        try:
            out.append(read_case(cohort, cid))
        except InputError as exc:
            out.append({"case_id": cid, "error": str(exc)})
    return out


def remove_case(cohort: Cohort, case_id: str) -> Path:
    """Delete one case: first moved out of ``cases/`` in one rename (a fine-tuning run starting meanwhile
    sees it whole or not at all), then deleted. Returns the folder it had."""
    folder = cohort.case_dir(case_id)
    if not folder.is_dir():
        raise InputError(f"Case {case_id} is not in the cohort {cohort.root} (see 'voxmmsd cohort list').")
    ensure_writable_dir(cohort.incoming_dir)
    trash = cohort.incoming_dir / f"removed-{case_id}-{os.getpid()}"
    if trash.exists():
        shutil.rmtree(trash)
    os.rename(folder, trash)
    shutil.rmtree(trash, ignore_errors=True)
    log.info("removed case %s from %s", case_id, cohort.root)
    return folder


def clean_incoming(cohort: Cohort, min_age_s: float = 3600.0) -> List[Path]:
    """Remove what interrupted adds left in ``.incoming/`` (older than ``min_age_s``, so that a concurrent
    add keeps its own)."""
    gone: List[Path] = []
    if not cohort.incoming_dir.is_dir():
        return gone
    now = time.time()
    for p in cohort.incoming_dir.iterdir():
        if now - p.stat().st_mtime >= min_age_s:
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink()
            gone.append(p)
    return gone

