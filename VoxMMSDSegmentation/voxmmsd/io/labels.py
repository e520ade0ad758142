"""Tumour label conventions, conversions and regions.

The engine's internal convention is BraTS 2023/2024: 1 NETC, 2 SNFH, 3 ET, 4 RC.
Legacy BraTS (2017-2021): 1 NCR/NET, 2 ED, 4 ET. Regions: WT = {NETC, SNFH, ET},
TC = {NETC, ET}, ET = {ET}; the resection cavity (RC) belongs to none of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from voxmmsd.errors import LabelError

BRATS2023 = "brats2023"
LEGACY = "legacy"
CONVENTIONS = (BRATS2023, LEGACY)

#: allowed values per convention
VALUES: Dict[str, Tuple[int, ...]] = {BRATS2023: (0, 1, 2, 3, 4), LEGACY: (0, 1, 2, 4)}

#: legacy -> BraTS 2023 value map (index = legacy value)
_LEGACY_TO_2023 = np.array([0, 1, 2, 0, 3] + [0] * 251, dtype=np.uint8)
_2023_TO_LEGACY = np.array([0, 1, 2, 4, 0] + [0] * 251, dtype=np.uint8)


@dataclass(frozen=True)
class LabelInfo:
    value: int
    key: str
    name: str
    color: Tuple[float, float, float]
    # (coding scheme, code value, code meaning)
    category: Tuple[str, str, str]
    type: Tuple[str, str, str]


_MORPH = ("SCT", "49755003", "Morphologically Altered Structure")

#: The label table of the internal convention. RC has no standard SNOMED CT code
#: for a resection cavity; a private scheme (prefix 99, as DICOM prescribes) names it.
LABEL_TABLE: Tuple[LabelInfo, ...] = (
    LabelInfo(1, "NETC", "Non-enhancing tumor core", (0.95, 0.85, 0.15), _MORPH, ("SCT", "6574001", "Necrosis")),
    LabelInfo(2, "SNFH", "Surrounding non-enhancing FLAIR hyperintensity", (0.2, 0.75, 0.3), _MORPH,
              ("SCT", "79654002", "Edema")),
    LabelInfo(3, "ET", "Enhancing tumor", (0.9, 0.2, 0.2), _MORPH, ("SCT", "108369006", "Neoplasm")),
    LabelInfo(4, "RC", "Resection cavity", (0.3, 0.45, 0.9), _MORPH, ("99VOXMMSD", "RC", "Resection cavity")),
)

#: Region -> internal label values.
REGIONS: Dict[str, Tuple[int, ...]] = {"WT": (1, 2, 3), "TC": (1, 3), "ET": (3,)}
#: Single labels reported beside the regions where present.
SUBREGIONS: Dict[str, Tuple[int, ...]] = {"NETC": (1,), "SNFH": (2,), "RC": (4,)}


def label_info(value: int) -> LabelInfo:
    for info in LABEL_TABLE:
        if info.value == value:
            return info
    raise KeyError(value)


def check_values(label: np.ndarray, convention: str, source: Optional[Path] = None) -> None:
    """Raise :class:`LabelError` if ``label`` holds a value outside ``convention``."""
    if convention not in VALUES:
        raise LabelError(f"Unknown label convention {convention!r}; use one of {CONVENTIONS}.")
    present = np.unique(label)
    bad = sorted(set(int(v) for v in present) - set(VALUES[convention]))
    if bad:
        where = f" in {source}" if source else ""
        if convention == LEGACY and bad == [3] and 4 in set(int(v) for v in present):
            raise ambiguous_labels(source, [int(v) for v in present])
        raise LabelError(
            f"Label value(s) {bad}{where} are not part of the {convention} convention "
            f"(allowed {list(VALUES[convention])}). Choose the right convention "
            f"(--labels {'legacy' if convention == BRATS2023 else 'brats2023'}?) or fix the label map."
        )


def detect_convention(values: Sequence[int]) -> Optional[str]:
    """Guess the convention from the label values present; None if ambiguous.

    3 present -> BraTS 2023; 4 present without 3 -> legacy. {1, 2} alone mean the same
    in both, so either works: BraTS 2023 is returned.
    """
    vals = set(int(v) for v in values) - {0}
    if vals - {1, 2, 3, 4}:
        return None
    if 3 in vals:
        return BRATS2023
    if 4 in vals:
        return LEGACY
    return BRATS2023


def ambiguous_labels(source: Optional[Path], values: Sequence[int]) -> LabelError:
    """The refusal for a label map holding 3 and 4 together under ``--labels auto``: two conventions fit."""
    return LabelError(
        f"Label map {source} holds the values {sorted(int(v) for v in values if v)}: 3 and 4 together fit two "
        f"conventions, so the tool will not guess. BraTS 2023/2024 (3 ET, 4 resection cavity; post-treatment "
        f"cases): give --labels brats2023 (and --set network.num_classes=5 for the network to learn the cavity). "
        f"Older BraTS with 4 = enhancing tumour (BraTS 2015 used 3 for non-enhancing tumour; 2017-2021 have no 3): "
        f"relabel 3 as 1 and give --labels legacy.")


def to_internal(label: np.ndarray, convention: str, source: Optional[Path] = None) -> np.ndarray:
    """Convert a label map from ``convention`` to the internal (BraTS 2023) one."""
    check_values(label, convention, source)
    label = np.asarray(label).astype(np.uint8, copy=False)
    if convention == LEGACY:
        return _LEGACY_TO_2023[label]
    return label.copy()


def from_internal(label: np.ndarray, convention: str) -> np.ndarray:
    """Convert an internal (BraTS 2023) label map to ``convention``.

    RC (4) has no legacy value and becomes background in the legacy convention.
    """
    check_values(label, BRATS2023)
    label = np.asarray(label).astype(np.uint8, copy=False)
    if convention == LEGACY:
        return _2023_TO_LEGACY[label]
    if convention != BRATS2023:
        raise LabelError(f"Unknown label convention {convention!r}; use one of {CONVENTIONS}.")
    return label.copy()


def region_masks(label: np.ndarray, include_subregions: bool = False) -> Dict[str, np.ndarray]:
    """Boolean masks of WT, TC, ET (and NETC, SNFH, RC if asked) of an internal label map."""
    table = dict(REGIONS)
    if include_subregions:
        table.update(SUBREGIONS)
    return {name: np.isin(label, values) for name, values in table.items()}


def volumes_ml(label: np.ndarray, voxel_volume_ml: float) -> Dict[str, float]:
    """Volume in millilitres of every region and sub-region of an internal label map."""
    counts = np.bincount(label.ravel(), minlength=5)
    out: Dict[str, float] = {}
    for name, values in list(REGIONS.items()) + list(SUBREGIONS.items()):
        out[name] = float(sum(counts[v] for v in values)) * voxel_volume_ml
    return out


def present_labels(label: np.ndarray) -> List[int]:
    return [int(v) for v in np.unique(label) if v != 0]
