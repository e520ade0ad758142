"""Find the four MRI sequences (and an optional label map) of a case, and the cases of a data set.

Naming conventions recognised, matched on the last ``-``/``_``/``.``-separated token of
the file name without its extension (case-insensitive):

=========================  ==========  ==========  ==========  ==========  =======
convention                 T1n         T1c         T2w         FLAIR       label
=========================  ==========  ==========  ==========  ==========  =======
BraTS 2023+                ``-t1n``    ``-t1c``    ``-t2w``    ``-t2f``    ``-seg``
BraTS <= 2021              ``_t1``     ``_t1ce``   ``_t2``     ``_flair``  ``_seg``
short names                ``t1``      ``t1c``     ``t2``      ``flair``   ``seg``
nnU-Net (channel order)    ``_0000``   ``_0001``   ``_0002``   ``_0003``   labelsTr
=========================  ==========  ==========  ==========  ==========  =======

A sub-folder named like a sequence (``t1c/``) holding a DICOM series counts as that
sequence. Explicit paths per sequence bypass name matching (:func:`case_from_paths`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from voxmmsd.errors import InputError

#: The four sequences, in the network's channel order.
SEQUENCES: Tuple[str, ...] = ("t1n", "t1c", "t2w", "t2f")

#: Human-readable names of the sequences.
SEQUENCE_NAMES: Dict[str, str] = {
    "t1n": "T1 native (T1n)",
    "t1c": "T1 post-contrast (T1c)",
    "t2w": "T2-weighted (T2w)",
    "t2f": "T2-FLAIR (T2f)",
}

LABEL = "label"

#: File-name token -> sequence key (or ``"label"``).
NAME_TOKENS: Dict[str, str] = {
    "t1n": "t1n", "t1": "t1n", "t1w": "t1n", "native": "t1n", "t1native": "t1n",
    "t1c": "t1c", "t1ce": "t1c", "t1gd": "t1c", "t1post": "t1c", "gd": "t1c",
    "t2w": "t2w", "t2": "t2w",
    "t2f": "t2f", "flair": "t2f", "t2flair": "t2f",
    "seg": LABEL, "label": LABEL, "labels": LABEL, "mask": LABEL,
}

#: nnU-Net channel suffix -> sequence key (the order of :data:`SEQUENCES`).
NNUNET_CHANNELS: Dict[str, str] = {"%04d" % i: s for i, s in enumerate(SEQUENCES)}

IMAGE_EXTENSIONS: Tuple[str, ...] = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")

_SPLIT = re.compile(r"[-_.\s]+")


@dataclass(frozen=True)
class CaseFiles:
    """Where the sequences (and the label map, if any) of one case are."""

    case_id: str
    sequences: Mapping[str, Path]
    label: Optional[Path] = None
    folder: Optional[Path] = None

    @property
    def missing(self) -> List[str]:
        return [s for s in SEQUENCES if s not in self.sequences]


@dataclass(frozen=True)
class DataSet:
    """A folder of cases."""

    root: Path
    cases: Tuple[CaseFiles, ...] = field(default_factory=tuple)
    layout: str = "folders"

    def __len__(self) -> int:
        return len(self.cases)

    def by_id(self) -> Dict[str, CaseFiles]:
        return {c.case_id: c for c in self.cases}


def strip_extension(name: str) -> str:
    """File name without its image extension (``a.nii.gz`` -> ``a``)."""
    lower = name.lower()
    for ext in IMAGE_EXTENSIONS:
        if lower.endswith(ext):
            return name[: -len(ext)]
    return name


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(IMAGE_EXTENSIONS) and not path.name.startswith(".")


def _is_dicom_dir(path: Path) -> bool:
    if not path.is_dir():
        return False
    for child in path.iterdir():
        if child.is_file() and (child.suffix.lower() in (".dcm", ".ima", "") and not child.name.startswith(".")):
            return True
    return False


def classify_name(stem: str) -> Optional[str]:
    """The sequence key (or ``"label"``) a file stem names, or None.

    >>> classify_name("BraTS-GLI-00001-000-t2f")
    't2f'
    >>> classify_name("Brats18_2013_3_1_t1ce")
    't1c'
    >>> classify_name("case_0002")
    't2w'
    """
    tokens = [t for t in _SPLIT.split(stem.lower()) if t]
    if not tokens:
        return None
    last = tokens[-1]
    if last in NNUNET_CHANNELS:
        return NNUNET_CHANNELS[last]
    if last in NAME_TOKENS:
        return NAME_TOKENS[last]
    if len(tokens) >= 2 and tokens[-2] + tokens[-1] in NAME_TOKENS:  # "t2_flair", "t1_ce"
        return NAME_TOKENS[tokens[-2] + tokens[-1]]
    return None


def _duplicate_error(folder: Path, key: str, paths: Sequence[Path]) -> InputError:
    what = "label map" if key == LABEL else SEQUENCE_NAMES[key]
    listed = ", ".join(str(p) for p in paths)
    return InputError(
        f"More than one {what} in {folder}: {listed}. Keep one, or give explicit paths "
        f"(--{key} FILE)."
    )


def find_case(folder: Path, case_id: Optional[str] = None, require_all: bool = True) -> CaseFiles:
    """Find the sequences of the case stored in ``folder``.

    Raises :class:`InputError` naming the folder when a sequence is missing (if
    ``require_all``) or found twice.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"Case folder not found: {folder}. Give a folder holding the four sequences.")
    found: Dict[str, List[Path]] = {}
    for child in sorted(folder.iterdir()):
        if is_image_file(child):
            key = classify_name(strip_extension(child.name))
        elif _is_dicom_dir(child):
            key = classify_name(child.name)
        else:
            continue
        if key is not None:
            found.setdefault(key, []).append(child)
    for key, paths in found.items():
        if len(paths) > 1:
            raise _duplicate_error(folder, key, paths)
    sequences = {k: v[0] for k, v in found.items() if k != LABEL}
    label = found.get(LABEL, [None])[0]
    case = CaseFiles(case_id or folder.name, sequences, label, folder)
    if require_all and case.missing:
        raise missing_error(case)
    return case


def missing_error(case: CaseFiles, allowed: Iterable[str] = ()) -> InputError:
    missing = [s for s in case.missing if s not in set(allowed)]
    names = ", ".join(SEQUENCE_NAMES[s] for s in missing)
    where = case.folder if case.folder is not None else case.case_id
    return InputError(
        f"Case {case.case_id!r} ({where}) has no {names}. Name the files like "
        f"'<case>-t1n/-t1c/-t2w/-t2f.nii.gz', '<case>_t1/_t1ce/_t2/_flair.nii.gz' or "
        f"'<case>_0000..0003.nii.gz', or give explicit paths per sequence."
    )


def case_from_paths(paths: Mapping[str, Optional[Path]], case_id: Optional[str] = None,
                    label: Optional[Path] = None) -> CaseFiles:
    """A case from explicit paths per sequence (keys of :data:`SEQUENCES`; None = absent)."""
    unknown = set(paths) - set(SEQUENCES)
    if unknown:
        raise InputError(f"Unknown sequence name(s) {sorted(unknown)}; use {list(SEQUENCES)}.")
    sequences = {k: Path(v) for k, v in paths.items() if v is not None}
    for key, path in sequences.items():
        if not path.exists():
            raise InputError(f"{SEQUENCE_NAMES[key]} file not found: {path}. Check the path.")
    if not sequences:
        raise InputError("No sequence given. Give at least the T1c image.")
    if case_id is None:
        first = sequences.get("t1c") or next(iter(sequences.values()))
        stem = strip_extension(first.name)
        case_id = re.sub(r"[-_.](t1c|t1ce|t1n|t1|t2w|t2|t2f|flair|000[0-3])$", "", stem, flags=re.I) or stem
    return CaseFiles(case_id, sequences, Path(label) if label else None, None)


def _nnunet_cases(root: Path) -> List[CaseFiles]:
    images = root / "imagesTr" if (root / "imagesTr").is_dir() else root / "imagesTs"
    labels = root / "labelsTr"
    groups: Dict[str, Dict[str, List[Path]]] = {}
    for f in sorted(images.iterdir()):
        if not is_image_file(f):
            continue
        stem = strip_extension(f.name)
        m = re.match(r"^(.*)_(\d{4})$", stem)
        if not m or m.group(2) not in NNUNET_CHANNELS:
            continue
        groups.setdefault(m.group(1), {}).setdefault(NNUNET_CHANNELS[m.group(2)], []).append(f)
    cases = []
    for cid, seqs in sorted(groups.items()):
        label = None
        if labels.is_dir():
            cands = [p for p in labels.iterdir() if is_image_file(p) and strip_extension(p.name) == cid]
            label = cands[0] if cands else None
        cases.append(CaseFiles(cid, {k: v[0] for k, v in seqs.items()}, label, images))
    return cases


def _folder_cases(root: Path, depth: int) -> List[CaseFiles]:
    """Cases in the sub-folders of ``root``; a sub-folder holding no images but case folders (a site,
    a cohort) is searched too, ``depth`` levels deep. Case ids must be unique."""
    cases: List[CaseFiles] = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        case = find_case(sub, require_all=False)
        if case.sequences:
            cases.append(case)
        elif depth > 1:
            cases.extend(_folder_cases(sub, depth - 1))
    seen: Dict[str, Path] = {}
    for case in cases:
        if case.case_id in seen:
            raise InputError(f"Two cases are named {case.case_id!r}: {seen[case.case_id]} and {case.folder}. "
                             f"Rename one of the folders.")
        seen[case.case_id] = case.folder  # type: ignore[assignment]
    return cases


def find_dataset(root: Path, require_all: bool = True, require_labels: bool = False) -> DataSet:
    """All cases under ``root``: one sub-folder per case (grouping folders one level deeper are
    searched too), or nnU-Net ``imagesTr/labelsTr``.

    A folder that itself holds one case's four sequences is a data set of one case.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"Data set folder not found: {root}.")
    if (root / "imagesTr").is_dir() or (root / "imagesTs").is_dir():
        cases = _nnunet_cases(root)
        layout = "nnunet"
    else:
        layout = "folders"
        cases = _folder_cases(root, depth=2)
        if not cases:
            single = find_case(root, require_all=False)
            if single.sequences:
                cases, layout = [single], "single"
    if not cases:
        raise InputError(
            f"No cases found in {root}. Expected one sub-folder per case holding the four "
            f"sequences, or an nnU-Net folder with imagesTr/ (and labelsTr/)."
        )
    if require_all:
        for case in cases:
            if case.missing:
                raise missing_error(case)
    if require_labels:
        unlabelled = [c.case_id for c in cases if c.label is None]
        if unlabelled:
            raise InputError(
                f"{len(unlabelled)} case(s) in {root} have no label map (e.g. {unlabelled[:3]}). "
                f"Add '<case>_seg.nii.gz' (or labelsTr/<case>.nii.gz) or remove those cases."
            )
    return DataSet(root, tuple(cases), layout)
