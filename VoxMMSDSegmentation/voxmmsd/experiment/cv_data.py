"""The cases of a cross-validation: where they lie, which are held out, and the folders of links to them.

A cross-validation works on one folder of case links (``--data``); each held-out fold is segmented
from its own folder of links, so that the batch segments exactly that fold's cases.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from voxmmsd.errors import InputError


def parse_sources(items: Sequence[str]) -> List[Tuple[str, Path]]:
    """``NAME=DIR`` items -> (name, folder) pairs; a name may be given for several folders."""
    out = []
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise InputError(f"--source {item!r}: give NAME=DIR, e.g. --source brats2018=data/brats2018.")
        if not Path(path).is_dir():
            raise InputError(f"--source {item!r}: no such folder {path}.")
        out.append((name, Path(path)))
    return out


def source_cases(sources: Sequence[Tuple[str, Path]]) -> Tuple[Dict[str, str], Dict[str, Path]]:
    """Every folder under each source holding a ``.nii.gz`` file is a case, named by its folder.

    Returns case id -> source name and case id -> folder. The same case id under two sources is refused.
    """
    names: Dict[str, str] = {}
    dirs: Dict[str, Path] = {}
    for name, root in sources:
        for sub in sorted(p for p in Path(root).rglob("*") if p.is_dir()):
            if any(f.name.endswith(".nii.gz") for f in sub.iterdir()):
                if sub.name in dirs and dirs[sub.name] != sub:
                    raise InputError(f"Case id {sub.name} is found twice: {dirs[sub.name]} and {sub}; "
                                     f"rename one of the folders.")
                names[sub.name] = name
                dirs[sub.name] = sub
    if not dirs:
        raise InputError(f"No case folder (a folder holding .nii.gz files) under {[str(r) for _, r in sources]}.")
    return names, dirs


def link_cases(case_dirs: Dict[str, Path], ids: Iterable[str], folder: Path) -> Path:
    """``folder`` holding exactly a link per case of ``ids`` (links left from an earlier selection are removed)."""
    ids = list(ids)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.iterdir():
        if stale.is_symlink() and stale.name not in ids:
            stale.unlink()
    for c in ids:
        link = folder / c
        if not link.exists():
            if link.is_symlink():  # a link whose case folder went away
                link.unlink()
            link.symlink_to(Path(case_dirs[c]).resolve(), target_is_directory=True)
    return folder


def case_folders(data: Path) -> Dict[str, Path]:
    """Case id -> folder of every labelled case of the data folder (all four sequences required)."""
    from voxmmsd.io.discovery import find_dataset

    ds = find_dataset(Path(data), require_all=True, require_labels=True)
    out: Dict[str, Path] = {}
    for c in ds.cases:
        if c.folder is None:
            raise InputError(f"{data}: case {c.case_id} has no folder of its own (an nnU-Net imagesTr/labelsTr "
                             f"layout?); cross-validation links one folder per case. Give a folder of case folders.")
        out[c.case_id] = Path(c.folder)
    return out


def excluded_ids(listed: Optional[str], seen_by: Optional[Path]) -> List[str]:
    """The case ids kept out of the held-out folds: ``--exclude ID,...`` and the cases model ``seen_by`` saw."""
    from voxmmsd.experiment.crossval import cases_seen_by

    ids = [c.strip() for c in (listed or "").split(",") if c.strip()]
    if seen_by:
        ids += cases_seen_by(seen_by)
    return sorted(set(ids))
