"""Find label maps in a folder by case id, and pair predictions with references.

Recognised layouts (the same for predictions and references):

* files directly in the folder: ``<case>.nii.gz``, ``<case>_seg.nii.gz``, ``<case>-seg.nii.gz``,
  ``<case>_segm.nii.gz`` (UPENN-GBM)
  (any image extension; image files named like an MRI sequence are ignored);
* one sub-folder per case holding one label map: ``<case>/segmentation.nii.gz`` (as written
  by ``voxmmsd segment --batch``) or a BraTS case folder ``<case>/<case>-seg.nii.gz``;
* nnU-Net: ``labelsTr/<case>.nii.gz``.

Where a case has its label map in several formats, NIfTI wins over NRRD and others
(``segmentation.seg.nrrd`` beside ``segmentation.nii.gz`` is not a conflict).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple

from voxmmsd.errors import InputError
from voxmmsd.io.discovery import IMAGE_EXTENSIONS, is_image_file, strip_extension
from voxmmsd.sequences import LABEL, LABEL_WORDS, classify_name

#: names of a label map: the vocabulary's label words (``seg``, ``segm``, ...) and VoxMMSD's ``segmentation``
_SEGMENTATION_NAMES = ("segmentation", *LABEL_WORDS)
_LABEL_SUFFIX = re.compile(r"[-_.](%s)$" % "|".join(_SEGMENTATION_NAMES), re.IGNORECASE)


@dataclass(frozen=True)
class Pair:
    case_id: str
    pred: Path
    ref: Path


@dataclass(frozen=True)
class Pairing:
    """Matched cases, and the ones found on only one side."""

    pairs: Tuple[Pair, ...]
    missing_pred: Tuple[str, ...]  # reference without prediction
    extra_pred: Tuple[str, ...]  # prediction without reference
    ref_files: Dict[str, Path]


def _rank(path: Path) -> int:
    name = path.name.lower()
    if name.endswith(".seg.nrrd"):
        return len(IMAGE_EXTENSIONS)
    for i, ext in enumerate(IMAGE_EXTENSIONS):
        if name.endswith(ext):
            return i
    return len(IMAGE_EXTENSIONS) + 1


def _pick(case_id: str, candidates: List[Path], folder: Path) -> Path:
    candidates = sorted(candidates, key=lambda p: (_rank(p), p.name))
    best = [p for p in candidates if _rank(p) == _rank(candidates[0])]
    if len(best) > 1:
        listed = ", ".join(str(p) for p in best)
        raise InputError(f"More than one label map for case {case_id!r} in {folder}: {listed}. "
                         f"Keep one per case.")
    return candidates[0]


def _label_case_id(path: Path) -> Tuple[str, bool]:
    """(case id, is it a label map) of an image file lying directly in a folder."""
    stem = strip_extension(path.name)
    if stem.lower().endswith(".seg"):  # Slicer's <case>.seg.nrrd
        stem = stem[:-4]
    key = classify_name(stem)
    if key is not None and key != LABEL:
        return stem, False  # an MRI sequence
    stripped = _LABEL_SUFFIX.sub("", stem)
    return (stripped or stem), True


def _in_case_folder(folder: Path) -> List[Path]:
    """Label maps inside one case sub-folder."""
    found = []
    for child in folder.iterdir():
        if not is_image_file(child):
            continue
        stem = strip_extension(child.name)
        base = stem[:-4] if stem.lower().endswith(".seg") else stem
        if base.lower() in _SEGMENTATION_NAMES or classify_name(base) == LABEL:
            found.append(child)
    return found


def find_label_maps(folder: Path, what: str = "label") -> Dict[str, Path]:
    """Case id -> label-map file of every case in ``folder``.

    Raises :class:`InputError` naming ``folder`` if it does not exist, holds no label map,
    or holds two label maps for one case.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{what} folder not found: {folder}. Check the path.")
    if (folder / "labelsTr").is_dir():
        folder = folder / "labelsTr"
    all_labels = folder.name == "labelsTr"  # nnU-Net: every file is a label map, whatever its name
    candidates: Dict[str, List[Path]] = {}
    for child in sorted(folder.iterdir()):
        if child.name.startswith("."):
            continue
        if is_image_file(child):
            case_id, is_label = (strip_extension(child.name), True) if all_labels else _label_case_id(child)
            if is_label:
                candidates.setdefault(case_id, []).append(child)
        elif child.is_dir():
            inner = _in_case_folder(child)
            if inner:
                candidates.setdefault(child.name, []).extend(inner)
    if not candidates:
        raise InputError(
            f"No {what} label maps found in {folder}. Expected '<case>.nii.gz', '<case>_seg.nii.gz', "
            f"'<case>/segmentation.nii.gz' (voxmmsd segment --batch), BraTS case folders with a "
            f"'-seg' file, or an nnU-Net labelsTr/ folder."
        )
    return {cid: _pick(cid, paths, folder) for cid, paths in sorted(candidates.items())}


def pair_folders(pred_dir: Path, ref_dir: Path) -> Pairing:
    """Pair the label maps of ``pred_dir`` with those of ``ref_dir`` by case id."""
    preds = find_label_maps(pred_dir, "prediction")
    refs = find_label_maps(ref_dir, "reference")
    pairs = tuple(Pair(cid, preds[cid], refs[cid]) for cid in refs if cid in preds)
    missing = tuple(cid for cid in refs if cid not in preds)
    extra = tuple(cid for cid in preds if cid not in refs)
    if not pairs:
        raise InputError(
            f"No case of the predictions in {pred_dir} (e.g. {list(preds)[:3]}) matches a case of the "
            f"references in {ref_dir} (e.g. {list(refs)[:3]}). Case ids come from the file or folder names; "
            f"check that both folders name the cases alike."
        )
    return Pairing(pairs, missing, extra, refs)
