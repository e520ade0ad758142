"""Choose a post-processing limit per fold, nested, on the other folds' out-of-fold predictions.

``voxmmsd experiment crossval postprocess`` is where the ``inference`` limits of a model package come
from. For each case and each candidate limit the prediction goes through the engine's own
post-processing (:func:`voxmmsd.infer.postprocess.postprocess_label`, the predictor's step, with only
that one rule on) and is scored against the reference; each fold then takes the limit that scored best
on the *other* folds (:func:`~voxmmsd.experiment.crossval.choose_nested`), so its own numbers stay
out-of-sample. Kinds (limit 0 is "off"):

- ``et``: a whole predicted ET under the limit (mL) becomes NETC (``min_et_ml``); chosen on the mean
  TC and ET Dice;
- ``components``: tumour components under the limit are removed (``min_component_ml``), and
- ``et-components``: ET components under the limit become NETC (``min_et_component_ml``), both judged
  on the images and chosen on the mean lesion-wise Dice of WT, TC and ET (the BraTS 2023 ranking
  metric, the one small false-positive islands hurt).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from voxmmsd.errors import InputError
from voxmmsd.experiment.crossval import choose_nested, read_splits, restrict_folds
from voxmmsd.experiment.cv_data import case_folders
from voxmmsd.experiment.cv_run import Arm

log = logging.getLogger(__name__)

#: kind -> the package's ``inference`` key it chooses
KINDS = {"et": "min_et_ml", "components": "min_component_ml", "et-components": "min_et_component_ml"}
REGIONS = ("WT", "TC", "ET")


@dataclass
class CaseInputs:
    """What the rules and the scores of one case need: its prediction, reference and images (one grid)."""

    label: np.ndarray
    geometry: Any
    images: Dict[str, np.ndarray]
    brain_mask: Optional[np.ndarray]
    reference: np.ndarray


@dataclass
class ScoredCase:
    """One case's scores per limit (its images are not kept: a cohort's would not fit in memory)."""

    result: Dict[float, Dict[str, Dict[str, float]]]  # limit -> region -> {dice, lesion_dice}
    score: Dict[float, float]  # limit -> the criterion


def limits_for(kind: str, limit_ml: float) -> Any:
    """The :class:`~voxmmsd.infer.postprocess.PostprocessLimits` with only ``kind``'s rule on."""
    from voxmmsd.infer.postprocess import PostprocessLimits

    if kind not in KINDS:
        raise InputError(f"Unknown post-processing kind {kind!r}; use one of {sorted(KINDS)}.")
    return PostprocessLimits(**{KINDS[kind]: float(limit_ml)})


def apply_limit(case: CaseInputs, kind: str, limit_ml: float) -> np.ndarray:
    """The case's prediction after the engine's post-processing with ``kind``'s rule at ``limit_ml``."""
    from voxmmsd.infer.postprocess import postprocess_label

    spacing_zyx = tuple(float(v) for v in case.geometry.spacing[::-1])
    out, _ = postprocess_label(case.label, case.images, spacing_zyx, case.geometry.voxel_volume_ml,
                               limits_for(kind, limit_ml), case.brain_mask)
    return out


def criterion(kind: str, scores: Dict[str, Dict[str, float]]) -> float:
    """What a limit is chosen on: mean TC and ET Dice (``et``), else mean WT, TC, ET lesion-wise Dice."""
    if kind == "et":
        return float(np.mean([scores[r]["dice"] for r in ("TC", "ET")]))
    return float(np.mean([scores[r]["lesion_dice"] for r in REGIONS]))


def read_inputs(case_dir: Path, pred_path: Path) -> CaseInputs:
    """Read a case's prediction, reference and images with the engine's readers."""
    from voxmmsd.io.discovery import find_case
    from voxmmsd.io.reader import load_case
    from voxmmsd.metrics.evaluate import load_label

    if not Path(pred_path).is_file():
        raise InputError(f"No prediction {pred_path}: run `voxmmsd experiment crossval run` first (or give --pred).")
    files = find_case(case_dir)
    if files.label is None:
        raise InputError(f"Case {case_dir} has no reference label map.")
    label, geometry, _ = load_label(pred_path, what="prediction")
    ref, _, _ = load_label(files.label, what="reference label map")
    case = load_case(files, with_label=False)
    if tuple(case.geometry.shape) != tuple(label.shape) or tuple(ref.shape) != tuple(label.shape):
        raise InputError(f"Prediction {pred_path} ({label.shape}) is not on the grid of case {case_dir} "
                         f"({tuple(case.geometry.shape)}).")
    return CaseInputs(label, geometry, {s: case.channel(s) for s in case.sequences}, case.brain_mask, ref)


def score_case(case: CaseInputs, kind: str, limits: Sequence[float]) -> ScoredCase:
    """The case's WT, TC and ET scores and the criterion after each limit."""
    from voxmmsd.metrics.evaluate import EvaluationConfig, evaluate_case

    scored = ScoredCase({}, {})
    regions_only = EvaluationConfig(subregions=False)  # WT, TC, ET only: the single labels are not needed
    for lim in limits:
        ev = evaluate_case(apply_limit(case, kind, lim), case.reference, case.geometry.spacing, regions_only)
        scored.result[lim] = {r: {"dice": ev[r]["dice"], "lesion_dice": ev[r]["lesion_dice"]} for r in REGIONS}
        scored.score[lim] = criterion(kind, scored.result[lim])
    return scored


def choose_limits(arm: Arm, kind: str, limits: Sequence[float], pred: Optional[Path] = None,
                  write: bool = False) -> Dict[str, Any]:
    """Score every limit on every held-out case, choose one per fold (nested), and return the record
    written to ``OUT/NAME/postprocess[-KIND].json``; ``write`` also writes the post-processed predictions
    to ``OUT/NAME/pred-pp-KIND/<case>/segmentation.nii.gz``."""
    from voxmmsd.io.writer import write_label_nifti

    limits = [float(v) for v in limits]
    if not limits:
        raise InputError("Give at least one limit (--limits 0,1,2).")
    drop = list(arm.exclude)
    folds = [f for f in restrict_folds(read_splits(arm.splits), drop) if f]
    dirs = case_folders(arm.data)
    exp = arm.folder
    pred_dir = Path(pred) if pred else exp / "pred"
    cases: Dict[str, ScoredCase] = {}
    for c in sorted(c for f in folds for c in f):
        if c not in dirs:
            raise InputError(f"Case {c} of {arm.splits} is not in {arm.data}.")
        cases[c] = score_case(read_inputs(dirs[c], pred_dir / c / "segmentation.nii.gz"), kind, limits)
        log.info("%s: %s", c, {lim: round(v, 3) for lim, v in cases[c].score.items()})
    chosen = choose_nested({c: s.score for c, s in cases.items()}, folds)
    dest = exp / f"pred-pp-{kind}"
    applied: Dict[str, Dict[str, Dict[str, float]]] = {}
    for k, f in enumerate(folds):
        for c in f:
            applied[c] = cases[c].result[chosen[k]]
            if write:  # read again: the images of every case are never held at once
                inputs = read_inputs(dirs[c], pred_dir / c / "segmentation.nii.gz")
                (dest / c).mkdir(parents=True, exist_ok=True)
                write_label_nifti(apply_limit(inputs, kind, chosen[k]), inputs.geometry,
                                  dest / c / "segmentation.nii.gz")
    return nested_record(kind, limits, chosen, applied, cases, drop)


def nested_record(kind: str, limits: List[float], chosen: List[float], applied: Dict[str, Any],
                  cases: Dict[str, ScoredCase], drop: List[str]) -> Dict[str, Any]:
    """The record of a nested choice (the layout of ``postprocess*.json``)."""

    def stats(r: str, m: str) -> Dict[str, Any]:
        vals = [applied[c][r][m] for c in applied]
        off = float(np.mean([cases[c].result[limits[0]][r][m] for c in applied])) if limits[0] == 0.0 else None
        return {"applied": float(np.mean(vals)), "sd_cases": float(np.std(vals, ddof=1)), "without": off}

    return {"kind": kind, "limits_ml": limits, "chosen_ml_per_fold": chosen,
            "nested": {r: {m: stats(r, m) for m in ("dice", "lesion_dice")} for r in REGIONS},
            "criterion": "mean TC, ET Dice" if kind == "et" else "mean WT, TC, ET lesion-wise Dice",
            "per_case_applied": applied, "excluded": drop,
            "mean_criterion_by_limit": {str(lim): float(np.mean([cases[c].score[lim] for c in cases]))
                                        for lim in limits}}


def record_name(kind: str) -> str:
    return "postprocess.json" if kind == "et" else f"postprocess-{kind}.json"
