"""Evaluate predicted label maps against references: per case and region, and per folder.

Regions follow BraTS: WT, TC, ET always; the single labels NETC, SNFH and RC where the
prediction or the reference holds them. Label maps are compared in the internal
(BraTS 2023) convention after conversion. See ../docs/evaluation.md for the definitions.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from voxmmsd.errors import ConfigError, InputError, LabelError
from voxmmsd.io.labels import CONVENTIONS, REGIONS, SUBREGIONS, detect_convention, to_internal
from voxmmsd.metrics.false_positive import fp_volume_outside
from voxmmsd.metrics.lesionwise import LesionWiseConfig, lesion_wise
from voxmmsd.metrics.overlap import confusion, dice, sensitivity, specificity, volume_error
from voxmmsd.metrics.pairing import Pair, Pairing, pair_folders
from voxmmsd.metrics.surface import BRATS_EVALUATION_MAX_MM, HD_METHODS, hausdorff

log = logging.getLogger(__name__)

AUTO = "auto"
MISSING_POLICIES = ("error", "skip", "worst")

#: Region order of every table.
REGION_ORDER: Tuple[str, ...] = tuple(REGIONS) + tuple(SUBREGIONS)

#: Metric columns, in table order.
METRICS: Tuple[str, ...] = (
    "dice", "hd95_mm", "sensitivity", "specificity",
    "volume_pred_ml", "volume_ref_ml", "volume_error_ml", "volume_error_rel",
    "lesion_dice", "lesion_hd95_mm", "lesions_tp", "lesions_fn", "lesions_fp", "lesions_small",
    "fp_far_ml",
)


@dataclass(frozen=True)
class EvaluationConfig:
    """How predictions are scored; saved next to every evaluation."""

    lesion_wise: bool = True
    subregions: bool = True
    percentile: float = 95.0
    max_distance: float = BRATS_EVALUATION_MAX_MM
    #: HD95 as the official BraTS evaluation (pooled) or the former larger-directed one (see metrics.surface)
    hd_method: str = "pooled"
    lesion: LesionWiseConfig = field(default_factory=LesionWiseConfig)
    missing: str = "error"  # a reference without prediction: error | skip | worst (scored as empty)
    geometry_tolerance: float = 1e-3  # mm (origin, spacing) and direction cosines

    def __post_init__(self) -> None:
        if self.missing not in MISSING_POLICIES:
            raise ConfigError(f"missing={self.missing!r} is not one of {MISSING_POLICIES}.")
        if self.hd_method not in HD_METHODS:
            raise ConfigError(f"hd_method={self.hd_method!r} is not one of {HD_METHODS}.")
        if not 0 < self.percentile <= 100:
            raise ConfigError(f"percentile={self.percentile} must lie in (0, 100].")

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "EvaluationConfig":
        d = dict(d)
        if "lesion" in d:
            d["lesion"] = LesionWiseConfig.from_dict(d["lesion"])
        return cls(**d)


def _region_pairs(pred: np.ndarray, ref: np.ndarray, subregions: bool) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    out = {name: (np.isin(pred, values), np.isin(ref, values)) for name, values in REGIONS.items()}
    if subregions:
        for name, values in SUBREGIONS.items():
            p, r = np.isin(pred, values), np.isin(ref, values)
            if p.any() or r.any():
                out[name] = (p, r)
    return out


def evaluate_case(pred: np.ndarray, ref: np.ndarray, spacing_xyz: Sequence[float],
                  config: EvaluationConfig = EvaluationConfig()) -> Dict[str, Dict[str, float]]:
    """Scores of one case, region -> metric -> value.

    ``pred``, ``ref``: internal-convention (BraTS 2023) label maps ``(z, y, x)`` on one grid;
    ``spacing_xyz``: voxel size in mm, SimpleITK order. Lesion-wise metrics are given for
    WT, TC and ET (NaN for the single labels, and when switched off).
    """
    pred = np.asarray(pred)
    ref = np.asarray(ref)
    if pred.shape != ref.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from reference shape {ref.shape}")
    voxel_ml = float(np.prod(spacing_xyz)) / 1000.0
    out: Dict[str, Dict[str, float]] = {}
    for name, (p, r) in _region_pairs(pred, ref, config.subregions).items():
        c = confusion(p, r)
        pred_ml, ref_ml, err_ml, rel = volume_error(c, voxel_ml)
        row: Dict[str, float] = {
            "dice": dice(c),
            "hd95_mm": hausdorff(p, r, spacing_xyz, config.percentile, config.max_distance, config.hd_method),
            "sensitivity": sensitivity(c), "specificity": specificity(c),
            "volume_pred_ml": pred_ml, "volume_ref_ml": ref_ml, "volume_error_ml": err_ml, "volume_error_rel": rel,
            "fp_far_ml": fp_volume_outside(p, r, spacing_xyz) if name in REGIONS else float("nan"),
        }
        nan = float("nan")
        row.update({"lesion_dice": nan, "lesion_hd95_mm": nan, "lesions_tp": nan, "lesions_fn": nan,
                    "lesions_fp": nan, "lesions_small": nan})
        if config.lesion_wise and name in REGIONS:
            lw = lesion_wise(p, r, spacing_xyz, config.lesion)
            row.update({"lesion_dice": lw.dice, "lesion_hd95_mm": lw.hd95, "lesions_tp": lw.n_tp,
                        "lesions_fn": lw.n_fn, "lesions_fp": lw.n_fp, "lesions_small": lw.n_small})
        out[name] = row
    return out


def load_label(path: Path, convention: str = AUTO, what: str = "label map"):  # -> (array, Geometry, str)
    """Read a label map and convert it to the internal convention.

    Returns ``(uint8 (z, y, x), Geometry, convention used)``. Raises :class:`LabelError`
    naming ``path`` for values outside the convention (or no convention fitting, with
    ``auto``), and :class:`InputError` for non-integer values.
    """
    import SimpleITK as sitk

    from voxmmsd.io.geometry import Geometry
    from voxmmsd.io.reader import read_image

    image = read_image(Path(path), what, label=True)
    arr = sitk.GetArrayFromImage(image)
    if arr.dtype.kind == "f":
        if not np.array_equal(arr, np.round(arr)):
            raise InputError(f"{what} {path} holds non-integer values; give a label map, not a probability map.")
    if arr.size and (arr.min() < 0 or arr.max() > 255):
        raise LabelError(f"{what} {path} holds values outside 0..255 ({arr.min()}..{arr.max()}); "
                         f"it is not a tumour label map.")
    arr = arr.astype(np.uint8)
    if convention == AUTO:
        values = [int(v) for v in np.unique(arr)]
        found = detect_convention(values)
        if found is None:
            raise LabelError(
                f"{what} {path} holds label values {values} that fit neither BraTS 2023 (0-4) nor legacy "
                f"BraTS (0, 1, 2, 4). Fix the label map, or check that this is the right file."
            )
        convention = found
    elif convention not in CONVENTIONS:
        raise ConfigError(f"Unknown label convention {convention!r}; use auto or one of {CONVENTIONS}.")
    return to_internal(arr, convention, Path(path)), Geometry.of(image), convention


@dataclass
class FolderEvaluation:
    """The result of :func:`evaluate_folders`."""

    rows: List[Dict[str, Any]]  # one per (case, region): case_id, region, status, METRICS
    pairing: Pairing
    conventions: Dict[str, Dict[str, str]]  # case -> {"pred": ..., "ref": ...}
    warnings: List[str]
    config: EvaluationConfig

    @property
    def cases(self) -> List[str]:
        return sorted({r["case_id"] for r in self.rows})


def evaluate_pair(pair: Pair, pred_convention: str = AUTO, ref_convention: str = AUTO,
                  config: EvaluationConfig = EvaluationConfig()) -> Tuple[List[Dict[str, Any]], Dict[str, str]]:
    """Rows (one per region) of one prediction/reference file pair, and the conventions used."""
    ref, ref_geom, ref_conv = load_label(pair.ref, ref_convention, "reference label map")
    pred, pred_geom, pred_conv = load_label(pair.pred, pred_convention, "predicted label map")
    if not pred_geom.same_as(ref_geom, tol=config.geometry_tolerance):
        raise InputError(
            f"Case {pair.case_id!r}: the prediction {pair.pred} ({pred_geom.describe()}) and the reference "
            f"{pair.ref} ({ref_geom.describe()}) lie on different grids. Metrics compare voxel by voxel: "
            f"write the prediction on the reference's grid (voxmmsd segment does), or resample it with "
            f"nearest-neighbour interpolation first."
        )
    scores = evaluate_case(pred, ref, ref_geom.spacing, config)
    rows = [dict(case_id=pair.case_id, region=name, status="ok", **scores[name])
            for name in REGION_ORDER if name in scores]
    return rows, {"pred": pred_conv, "ref": ref_conv}


def _worst_rows(case_id: str, ref_path: Path, ref_convention: str,
                config: EvaluationConfig) -> Tuple[List[Dict[str, Any]], Dict[str, str]]:
    ref, geom, conv = load_label(ref_path, ref_convention, "reference label map")
    scores = evaluate_case(np.zeros_like(ref), ref, geom.spacing, config)
    rows = [dict(case_id=case_id, region=name, status="missing prediction", **scores[name])
            for name in REGION_ORDER if name in scores]
    return rows, {"pred": "none", "ref": conv}


def evaluate_folders(pred_dir: Path, ref_dir: Path, pred_convention: str = AUTO, ref_convention: str = AUTO,
                     config: EvaluationConfig = EvaluationConfig(), events: Optional[Any] = None) -> FolderEvaluation:
    """Score every prediction in ``pred_dir`` against its reference in ``ref_dir`` (paired by case id).

    References without a prediction raise :class:`InputError` (``config.missing="error"``), are
    left out (``"skip"``), or are scored as empty predictions (``"worst"``, as BraTS ranks
    missing cases). Predictions without a reference are ignored with a warning. ``events``
    is an optional :class:`~voxmmsd.jobs.events.EventWriter` (stage ``evaluate``).
    """
    pairing = pair_folders(Path(pred_dir), Path(ref_dir))
    warnings: List[str] = []
    if pairing.missing_pred:
        listed = ", ".join(pairing.missing_pred[:10]) + (" ..." if len(pairing.missing_pred) > 10 else "")
        msg = (f"{len(pairing.missing_pred)} reference case(s) in {ref_dir} have no prediction in {pred_dir}: "
               f"{listed}")
        if config.missing == "error":
            raise InputError(msg + ". Predict them, or choose --missing skip (score only the pairs) or "
                                   "--missing worst (score them as empty predictions, as BraTS does).")
        warnings.append(msg + (" (left out)" if config.missing == "skip" else " (scored as empty predictions)"))
    if pairing.extra_pred:
        warnings.append(f"{len(pairing.extra_pred)} prediction(s) in {pred_dir} have no reference in {ref_dir} "
                        f"and were ignored: {', '.join(pairing.extra_pred[:10])}")
    for w in warnings:
        log.warning("%s", w)

    todo: List[Tuple[str, Optional[Pair]]] = [(p.case_id, p) for p in pairing.pairs]
    if config.missing == "worst":
        todo += [(cid, None) for cid in pairing.missing_pred]
    todo.sort(key=lambda t: t[0])
    if events is not None:
        events.emit("evaluate", "start", total=len(todo), message=f"evaluating {len(todo)} case(s)")
    rows: List[Dict[str, Any]] = []
    conventions: Dict[str, Dict[str, str]] = {}
    for i, (cid, pair) in enumerate(todo):
        if pair is None:
            case_rows, conv = _worst_rows(cid, pairing.ref_files[cid], ref_convention, config)
        else:
            case_rows, conv = evaluate_pair(pair, pred_convention, ref_convention, config)
        rows.extend(case_rows)
        conventions[cid] = conv
        wt = next((r for r in case_rows if r["region"] == "WT"), None)
        log.info("case %s: WT Dice %.3f", cid, wt["dice"] if wt else math.nan)
        if events is not None:
            events.emit("evaluate", "progress", iteration=i + 1, total=len(todo), message=cid)
    if events is not None:
        events.emit("evaluate", "done", total=len(todo), message=f"evaluated {len(todo)} case(s)")
    return FolderEvaluation(rows, pairing, conventions, warnings, config)
