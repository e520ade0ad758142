"""Preparing a fine-tuning run: labelled cases into the cache, split, network (+ ``--init``), optimiser."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from voxmmsd.errors import LabelError
from voxmmsd.finetune.config import FinetuneConfig
from voxmmsd.finetune.split import split_cases
from voxmmsd.jobs.distributed import DistInfo, barrier
from voxmmsd.jobs.events import EventWriter

log = logging.getLogger(__name__)


@dataclass
class Cases:
    """The cache folder and the training / validation case ids."""

    folder: Path
    train: List[str]
    val: List[str]
    conventions: Dict[str, str]


def cache_folder(cfg: FinetuneConfig, run_dir: Path) -> Path:
    return Path(cfg.data.cache_dir) if cfg.data.cache_dir else Path(run_dir) / "cache"


def prepare_cases(data_dir: Path, cfg: FinetuneConfig, run_dir: Path, dist: DistInfo,
                  events: Optional[EventWriter] = None) -> Cases:
    """Find the labelled cases, split them and preprocess them into the cache (rank 0 builds it).

    Raises :class:`InputError` for an empty folder, unlabelled or incomplete cases, and
    :class:`LabelError` for label values outside the convention or that the network cannot learn.
    """
    from voxmmsd.data.cache import build_cache, is_cache_folder, open_prepared, settings_key
    from voxmmsd.io.discovery import find_dataset

    if is_cache_folder(Path(data_dir)):  # images preprocessed elsewhere: use the cache as it is
        ids = [c.case_id for c in open_prepared(Path(data_dir), cfg.preprocessing, require_labels=True)]
        train, val = split_cases(ids, cfg.data.train, cfg.data.val, cfg.data.split_seed)
        return _checked_cases(Path(data_dir), train, val, cfg)
    dataset = find_dataset(Path(data_dir), require_all=True, require_labels=True)
    train, val = split_cases([c.case_id for c in dataset.cases], cfg.data.train, cfg.data.val, cfg.data.split_seed)
    root = cache_folder(cfg, run_dir)
    folder = root / settings_key(cfg.preprocessing, True)
    if dist.is_main:
        by_id = dataset.by_id()
        used = type(dataset)(dataset.root, tuple(by_id[c] for c in train + val), dataset.layout)
        build_cache(used, root, cfg.preprocessing, cfg.data.labels, events=events, show_progress=False)
    barrier(dist)
    return _checked_cases(folder, train, val, cfg)


def _checked_cases(folder: Path, train: List[str], val: List[str], cfg: FinetuneConfig) -> Cases:
    from voxmmsd.data.cache import open_case

    conventions = {}
    empty = []
    for cid in train + val:
        case = open_case(folder, cid)
        conventions[cid] = str(case.meta.get("label_convention", cfg.data.labels))
        top = int(np.asarray(case.label).max())
        if top >= cfg.network.num_classes:
            raise LabelError(f"Case {cid} holds label {top} (resection cavity, RC, in the {conventions[cid]} "
                             f"convention) but the network has {cfg.network.num_classes} outputs. Add --set "
                             f"network.num_classes=5 to learn RC.")
        if top == 0:
            empty.append(cid)
    if empty and len(empty) == len(train + val):
        raise LabelError(f"Every label map of the {len(empty)} case(s) is empty (no tumour voxel): a network trained "
                         f"on them learns to find nothing. Check the label files (wrong files, or labels lost in an "
                         f"export).")
    if empty:
        log.warning("%d of %d case(s) have an empty label map (no tumour): %s. Training goes on; check that this "
                    "is meant.", len(empty), len(train + val), ", ".join(empty[:10]))
    log.info("cases: %d for training, %d for validation (cache %s)", len(train), len(val), folder)
    return Cases(folder, train, val, conventions)


def build_optimizer(model: torch.nn.Module, cfg: FinetuneConfig) -> torch.optim.Optimizer:
    t = cfg.train
    if t.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=t.lr, momentum=t.momentum, nesterov=True,
                               weight_decay=t.weight_decay)
    return torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)


def init_summary(result: Any) -> Dict[str, Any]:
    """The part of an :class:`~voxmmsd.finetune.init.InitResult` recorded in events and the package."""
    if result is None:
        return {"source": None}
    return result.to_dict()
