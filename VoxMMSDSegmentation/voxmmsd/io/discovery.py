"""Find the four MRI sequences (and an optional label map) of a case, and the cases of a data set.

Names are read by the one sequence vocabulary, :func:`voxmmsd.sequences.classify` (naming conventions of BraTS,
UPENN-GBM, nnU-Net and short names first, then names from the scanner: clinical exports and DICOM series
descriptions); what matched, and why, is recorded per sequence (:attr:`CaseFiles.matches`).

A sub-folder holding a DICOM series counts as the sequence its name says (``t1c/``), else
the one its DICOM series description (0008,103E) says. Explicit paths per sequence bypass
name matching (:func:`case_from_paths`). The files of a VoxMMSD result in the folder
(:func:`voxmmsd.io.results.tool_written`: ``segmentation.seg.nrrd`` and the rest) are never taken
for a sequence or a label; an image-named broken link is refused, naming it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from voxmmsd.errors import InputError
from voxmmsd.io.access import check_openable, is_broken_link
from voxmmsd.io.results import tool_written
from voxmmsd.sequences import LABEL, NNUNET_CHANNELS, SEQUENCE_NAMES, SEQUENCES, classify, classify_name, missing

IMAGE_EXTENSIONS: Tuple[str, ...] = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")


@dataclass(frozen=True)
class CaseFiles:
    """Where the sequences (and the label map, if any) of one case are."""

    case_id: str
    sequences: Mapping[str, Path]
    label: Optional[Path] = None
    folder: Optional[Path] = None
    #: sequence (or ``label``) -> what was matched and why, e.g. ``"'exam_T1+C.nii.gz': T1 with contrast (+c)"``
    matches: Mapping[str, str] = field(default_factory=dict)

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
    try:
        children = list(path.iterdir())
    except OSError:  # a folder that cannot be listed holds no series we could read
        return False
    for child in children:
        if child.is_file() and (child.suffix.lower() in (".dcm", ".ima", "") and not child.name.startswith(".")):
            return True
    return False


def dicom_series_description(folder: Path) -> Optional[str]:
    """The SeriesDescription (0008,103E) of the first DICOM file in ``folder``, or None."""
    import SimpleITK as sitk

    for child in sorted(folder.iterdir()):
        if not child.is_file() or child.name.startswith("."):
            continue
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(child))
        try:
            reader.ReadImageInformation()
        except RuntimeError:
            continue
        if reader.HasMetaDataKey("0008|103e"):
            return reader.GetMetaData("0008|103e").strip() or None
        return None
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
    check_openable(folder, "case folder", folder=True)
    found: Dict[str, List[Path]] = {}
    why: Dict[Path, str] = {}
    ours = tool_written(folder)  # a VoxMMSD result in the folder is neither a sequence nor a reference label
    for child in sorted(folder.iterdir()):
        if child.name in ours:
            continue
        if is_broken_link(child) and child.name.lower().endswith(IMAGE_EXTENSIONS):
            check_openable(child, "image")  # refused, naming the link: never silently taken as a missing sequence
        if is_image_file(child):
            name = strip_extension(child.name)
        elif _is_dicom_dir(child):
            name = child.name
        else:
            continue
        match = classify(name)
        if match is None and child.is_dir():
            description = dicom_series_description(child)
            match = classify(description) if description else None
            if match is not None:
                match = (match[0], f"DICOM series description {description!r}: {match[1]}")
        if match is None:
            continue
        key = match[0]
        why[child] = f"{child.name!r}: {match[1]}"
        found.setdefault(key, []).append(child)
    for key, paths in found.items():
        if len(paths) > 1:
            raise _duplicate_error(folder, key, paths)
    sequences = {k: v[0] for k, v in found.items() if k != LABEL}
    label = found.get(LABEL, [None])[0]
    matches = {k: why[v[0]] for k, v in found.items()}
    case = CaseFiles(case_id or folder.name, sequences, label, folder, matches)
    if require_all:
        check_sequences(case)
    return case


#: how to name the files (the fix a missing-sequence message gives by default)
NAMING_HINT = ("Name the files like '<case>-t1n/-t1c/-t2w/-t2f.nii.gz', '<case>_t1/_t1ce/_t2/_flair.nii.gz' or "
               "'<case>_0000..0003.nii.gz', or give explicit paths per sequence.")


def missing_error(case: CaseFiles, absent: Optional[Sequence[str]] = None, fix: str = NAMING_HINT) -> InputError:
    """The error for a case without the sequences ``absent`` (default: every one it lacks), naming the case, its
    folder, the sequences and ``fix``."""
    names = ", ".join(SEQUENCE_NAMES[s] for s in (case.missing if absent is None else absent))
    where = case.folder if case.folder is not None else case.case_id
    return InputError(f"Case {case.case_id!r} ({where}) has no {names}. {fix}")


def check_sequences(case: CaseFiles, needed: Sequence[str] = SEQUENCES, allowed: Iterable[str] = (),
                    fix: str = NAMING_HINT) -> None:
    """The one missing-sequence check: raises :func:`missing_error` when a sequence of ``needed`` is absent and not
    in ``allowed``, or when the case has no sequence at all (:func:`voxmmsd.sequences.missing`)."""
    absent = missing(case.sequences, needed, allowed)
    if absent:
        raise missing_error(case, absent, fix)


def case_from_paths(paths: Mapping[str, Optional[Path]], case_id: Optional[str] = None,
                    label: Optional[Path] = None) -> CaseFiles:
    """A case from explicit paths per sequence (keys of :data:`SEQUENCES`; None = absent)."""
    unknown = set(paths) - set(SEQUENCES)
    if unknown:
        raise InputError(f"Unknown sequence name(s) {sorted(unknown)}; use {list(SEQUENCES)}.")
    sequences = {k: Path(v) for k, v in paths.items() if v is not None}
    for key, path in sequences.items():
        check_openable(path, f"{SEQUENCE_NAMES[key]} image", folder=True)
    if not sequences:
        raise InputError("No sequence given. Give at least the T1c image.")
    if case_id is None:
        first = sequences.get("t1c") or next(iter(sequences.values()))
        stem = strip_extension(first.name)
        last = re.search(r"[-_.][^-_.]+$", stem)  # "<case>_t1ce" -> "<case>": the token naming the sequence
        case_id = stem[:last.start()] if last and last.start() and classify_name(last.group()) in SEQUENCES else stem
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
            check_sequences(case)
    if require_labels:
        unlabelled = [c.case_id for c in cases if c.label is None]
        if unlabelled:
            raise InputError(
                f"{len(unlabelled)} case(s) in {root} have no label map (e.g. {unlabelled[:3]}). "
                f"Add '<case>_seg.nii.gz' (or labelsTr/<case>.nii.gz) or remove those cases."
            )
    return DataSet(root, tuple(cases), layout)


def case_from_arguments(folder: Optional[Path], explicit: Mapping[str, Optional[Path]],
                        label: Optional[Path] = None, require_all: bool = True) -> CaseFiles:
    """The case a command line names: a case ``folder``, explicit paths per sequence (``explicit``, None = not
    given; they override what the folder holds), or both."""
    if any(explicit.values()):
        base = find_case(folder, require_all=False) if folder is not None else None
        paths: Dict[str, Optional[Path]] = dict(base.sequences) if base else {}
        paths.update({k: v for k, v in explicit.items() if v is not None})
        return case_from_paths(paths, base.case_id if base else None, label or (base.label if base else None))
    if folder is None:
        raise InputError("Give a case folder, or the images with --t1n --t1c --t2w --t2f.")
    return find_case(folder, require_all=require_all)

