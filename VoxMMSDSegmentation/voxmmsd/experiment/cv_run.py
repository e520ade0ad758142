"""Train and segment the folds of a cross-validation (``voxmmsd experiment crossval run`` and ``variant``).

``run`` trains one model per fold on the other folds (``voxmmsd finetune``, no validation cases), then
segments the held-out cases with it (``voxmmsd segment --batch``) into ``OUT/NAME/pred/``. With a fixed
``model`` nothing is trained: every held-out fold is segmented with that model (the baseline arm of a
warm-start comparison). Finished fold models are kept when the command runs again.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from voxmmsd.experiment import cv_engine
from voxmmsd.experiment.crossval import read_splits, restrict_folds, training_ids
from voxmmsd.experiment.cv_data import case_folders, link_cases

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Arm:
    """One arm of a cross-validation: its folder ``out/name`` and where its cases and folds come from."""

    data: Path
    splits: Path
    out: Path
    name: str
    exclude: Tuple[str, ...] = ()  # never held out (nor scored); they still train the fold models

    @property
    def folder(self) -> Path:
        return Path(self.out) / self.name


@dataclass(frozen=True)
class RunOptions:
    """How ``run`` trains and segments."""

    model: Optional[Path] = None  # segment every fold with this model; train nothing
    config: Optional[Path] = None
    settings: Tuple[str, ...] = ()
    folds: Optional[Tuple[int, ...]] = None  # None: every fold
    device: str = "cpu"
    segment: bool = True  # False: train only
    segment_options: Tuple[str, ...] = ()  # more `voxmmsd segment` options, e.g. --tta


def fold_model(arm: Arm, k: int, model: Optional[Path]) -> Path:
    """The model package that segments fold ``k``: the fixed ``model``, else the fold's own."""
    return Path(model) if model else arm.folder / f"fold{k}" / "model"


def run_folds(arm: Arm, options: RunOptions) -> Dict[str, float]:
    """Train (unless ``options.model``) and segment the chosen folds; the timings (also in ``timings.json``)."""
    from voxmmsd.io.atomic import write_text

    folds = read_splits(arm.splits)
    held_folds = restrict_folds(folds, arm.exclude)
    dirs = case_folders(arm.data)
    exp = arm.folder
    exp.mkdir(parents=True, exist_ok=True)
    record = exp / "timings.json"
    timings: Dict[str, float] = json.loads(record.read_text(encoding="utf-8")) if record.exists() else {}
    which = list(options.folds) if options.folds is not None else list(range(len(folds)))
    for k in which:
        if not 0 <= k < len(folds):
            from voxmmsd.errors import InputError

            raise InputError(f"Fold {k} does not exist: {arm.splits} has folds 0-{len(folds) - 1}.")
        if not held_folds[k]:
            log.info("fold %d: every case is excluded; nothing to hold out", k)
            continue
        model = fold_model(arm, k, options.model)
        if not options.model and not (model / "model.json").exists():
            timings[f"fold{k}_train_s"] = round(cv_engine.finetune_fold(
                arm.data, exp / f"fold{k}", training_ids(folds, k), options.device, exp / "log.txt",
                options.config, options.settings), 1)
        held = link_cases(dirs, held_folds[k], exp / "inputs" / f"fold{k}")
        if not options.segment:
            continue
        timings[f"fold{k}_segment_s"] = round(cv_engine.segment_cases(
            held, exp / "pred", model, options.device, exp / "log.txt", options.segment_options), 1)
        write_text(record, json.dumps(timings, indent=1))
    return timings


def segment_variant(arm: Arm, variant: Path, pred_name: str, model: Optional[Path] = None,
                    device: str = "cpu") -> List[str]:
    """Segment a variant of the cases (same ids, e.g. one sequence left out) with each case's out-of-fold
    model (or ``model``) into ``OUT/NAME/PRED_NAME``; the case ids segmented."""
    folds = restrict_folds(read_splits(arm.splits), arm.exclude)
    present = {p.name: p for p in Path(variant).iterdir() if p.is_dir()}
    done: List[str] = []
    for k, fold in enumerate(folds):
        ids = [c for c in fold if c in present]
        if not ids:
            continue
        held = link_cases(present, ids, arm.folder / f"inputs-{pred_name}" / f"fold{k}")
        cv_engine.segment_cases(held, arm.folder / pred_name, fold_model(arm, k, model), device,
                                arm.folder / "log.txt")
        done += ids
    return done


def parse_folds(text: Optional[str]) -> Optional[Tuple[int, ...]]:
    """``"0,2"`` -> (0, 2); None or empty -> None (every fold)."""
    if not text:
        return None
    from voxmmsd.errors import InputError

    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise InputError(f"--folds {text!r}: give comma-separated fold numbers, e.g. 0,1.") from None
