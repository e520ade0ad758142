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

Names from the scanner (clinical exports, DICOM series descriptions) are recognised next,
when no convention above matches (:func:`classify_clinical`): the name's words are read for
FLAIR (``fla``, ``flair``, ``tirm``, ``dark fluid``), a contrast agent (``+C``, ``C+``, ``post``,
``gad``, ``gd``, ``ce``, ``km``, agent names; ``pre``/``native`` say none), T1 (``t1``, ``mprage``,
``spgr``, ``bravo``, ``tfe``) and T2 (``t2``, ``tse``/``fse`` without T1); so ``fla``, ``FLAIR``,
``T1+C``, ``T1 POST GAD``, ``MPRAGE``, ``T1CE``, ``T2 TSE``, ``AX T2 FLAIR``, ``t1_mprage_sag`` are
found. Diffusion, perfusion, susceptibility, T2* and localisers are never taken for a sequence.
What matched, and why, is recorded per sequence (:attr:`CaseFiles.matches`).

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
    "seg": LABEL, "segm": LABEL, "label": LABEL, "labels": LABEL, "mask": LABEL,
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


#: words (lower case) of scanner names that say FLAIR / a contrast agent / no agent / T1 / T2
FLAIR_WORDS = frozenset({"fla", "flair", "t2f", "t2flair", "tirm", "flair3d", "spcflair", "darkfluid", "irfse"})
CONTRAST_WORDS = frozenset({"+", "+c", "c+", "c", "ce", "gd", "gad", "gado", "gadolinium", "post", "postcontrast",
                            "postgad", "postgd", "contrast", "km", "mdc", "kontrast", "dotarem", "gadovist",
                            "magnevist", "multihance", "prohance", "clariscan", "t1c", "t1ce", "t1gd", "t1post",
                            "t1km"})
NATIVE_WORDS = frozenset({"pre", "precontrast", "native", "nativ", "noncontrast", "t1n", "t1native"})
T1_WORDS = frozenset({"t1", "t1w", "t1n", "t1c", "t1ce", "t1gd", "t1post", "t1km", "t1native", "mprage", "mp",
                      "spgr", "fspgr", "bravo", "tfe", "t1tse", "t1se", "t1fse", "vibe", "t1flash", "flash3d"})
T2_WORDS = frozenset({"t2", "t2w", "t2tse", "t2fse", "t2space", "tse", "fse", "haste"})
#: words of series that are none of the four sequences, even if they hold a word above
OTHER_WORDS = frozenset({"dwi", "adc", "trace", "dti", "diffusion", "swi", "swan", "t2star", "star", "gre", "perf",
                         "perfusion", "dsc", "dce", "asl", "cbf", "cbv", "localizer", "localiser", "loc", "scout",
                         "survey", "mra", "tof", "angio", "fa", "map", "mip", "phase", "pha", "mosaic"})
_WORDS = re.compile(r"\+?[a-z0-9]+\+?|\+")


def _words(name: str) -> List[str]:
    """Lower-case words of a scanner name; a '+' is a word, or stays on the word it touches ('c+', '+c')."""
    words = _WORDS.findall(name.lower().replace("*", " star "))
    out: List[str] = []
    for w in words:
        if w.startswith("t1+") or w.startswith("t2+"):  # "t1+c" -> "t1", "+c"
            out += [w[:2], w[2:]]
        else:
            out.append(w)
    return out


def classify_clinical(name: str) -> Optional[Tuple[str, str]]:
    """(sequence key, why) for a name as scanners and clinical exports write it, or None.

    >>> classify_clinical("exam_T1+C")
    ('t1c', 'T1 with contrast (t1, +, c)')
    >>> classify_clinical("AX T2 FLAIR")[0], classify_clinical("t1_mprage_sag_p2_iso")[0]
    ('t2f', 't1n')
    """
    words = _words(name)
    joined = "".join(words)
    if not words or OTHER_WORDS.intersection(words):
        return None
    flair = [w for w in words if w in FLAIR_WORDS] or (["dark fluid"] if "darkfluid" in joined else [])
    if flair:
        return "t2f", f"FLAIR ({', '.join(flair)})"
    t1 = [w for w in words if w in T1_WORDS]
    native = [w for w in words if w in NATIVE_WORDS]
    agent = [w for w in words if w in CONTRAST_WORDS and (w != "c" or t1)]
    if agent and not native:
        what = f"T1 with contrast ({', '.join(dict.fromkeys(t1 + agent))})" if t1 else \
            f"contrast agent ({', '.join(agent)}), so post-contrast T1"
        return "t1c", what
    if t1:
        return "t1n", f"T1 without contrast ({', '.join(dict.fromkeys(t1 + native))})"
    t2 = [w for w in words if w in T2_WORDS]
    if t2:
        return "t2w", f"T2-weighted ({', '.join(t2)})"
    return None


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
        key = classify_name(name)
        if key is not None:
            why[child] = f"{child.name!r}: naming convention ({SEQUENCE_NAMES.get(key, 'label map')})"
        else:
            match = classify_clinical(name)
            if match is None and child.is_dir():
                description = dicom_series_description(child)
                match = classify_clinical(description) if description else None
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
        check_openable(path, f"{SEQUENCE_NAMES[key]} image", folder=True)
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

