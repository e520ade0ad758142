"""The model package at the end of a fine-tuning run (``RUN/model/``), via :func:`voxmmsd.models.package.save_package`.

The weights are those of the best validation Dice (``best.pt``), or the last ones when
the run had no validation cases.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict

from voxmmsd.finetune.config import FinetuneConfig, selection_text
from voxmmsd.finetune.prepare import Cases
from voxmmsd.jobs.checkpoint import load_checkpoint
from voxmmsd.jobs.run_folder import RunFolder

log = logging.getLogger(__name__)


def write_package(run_dir: Path, model: Any, cfg: FinetuneConfig, cases: Cases, state: Any,
                  init_info: Dict[str, Any], data_dir: Path) -> Path:
    from voxmmsd.io.discovery import SEQUENCES
    from voxmmsd.models.package import save_package

    best_path = RunFolder(run_dir).best_checkpoint
    if best_path.is_file():
        weights = load_checkpoint(best_path)["model"]
        chosen = f"best validation Dice (iteration {state.best.get('iteration')})"
    else:
        weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        chosen = f"last iteration ({state.iteration})"
    p = cfg.package
    loss, clinical = getattr(cfg.train, "loss", "dice_ce"), getattr(cfg.data, "clinical_sim", 0.0)
    training = {
        "recipe": ("voxmmsd finetune (soft Dice + BCE on sigmoid WT/TC/ET regions" if loss == "regions"
                   else "voxmmsd finetune (Dice + cross-entropy") + ", patches with foreground over-sampling"
                  + (f", simulated clinical acquisitions p={clinical}" if clinical else "") + ")",
        "data": str(data_dir), "cases": {"train": cases.train, "val": cases.val},
        "label_conventions": sorted(set(cases.conventions.values())),
        "split": {"train": selection_text(cfg.data.train), "val": selection_text(cfg.data.val),
                  "seed": cfg.data.split_seed},
        "iterations": state.iteration, "weights": chosen, "init": init_info,
        "sequence_dropout": cfg.data.sequence_dropout, "config": cfg.to_dict(),
    }
    metrics: Dict[str, Any] = {}
    if state.best.get("dice") is not None:
        metrics = {"validation_dice": state.best.get("regions", {}), "validation_mean_dice": state.best["dice"],
                   "validation_cases": len(cases.val), "grid": "preprocessed (cache) grid"}
    return save_package(
        RunFolder(run_dir).model, weights, cfg.network, cfg.preprocessing, model_id=p.model_id, version=p.version,
        sequences=SEQUENCES[: cfg.network.in_channels], tolerates_missing=cfg.data.sequence_dropout > 0,
        training=training, metrics=metrics, export_onnx=p.onnx, description=p.description, name=p.name,
        license=p.license, citation=p.citation,
        # patch_size None: the whole crop in one pass (windows only when memory is short), the path
        # validation used; the training patch size is a poor window for a network that saw whole crops
        inference={"patch_size": None, "overlap": cfg.validation.overlap, "tta": False,
                   "output": "regions" if loss == "regions" else "classes"},
    )
