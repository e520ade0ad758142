"""The fine-tuning settings of a cohort run, from the model it starts from.

Sources, later ones winning:

1. the starting model's own recipe (``training.config`` of its ``model.json``), where it records one:
   patch size, batch, augmentation, loss, precision; its ``network`` and ``preprocessing`` always
   (a warm start needs the same network, and the same preprocessing keeps the comparison fair; a fold
   ensemble gives one network of its members' shape, warm-started from its first member);
2. the cohort defaults (:data:`WARM_START`): a short, gentle continuation (200 iterations, lr 2e-4, no
   warm-up, the trained output layer kept, no validation cases: the comparison is the cross-validation);
3. with a pre-training run as the start (``init``): its network and preprocessing, a fresh output layer
   and a warm-up (:data:`FROM_PRETRAINING`);
4. the user's ``--config`` file, ``--set`` overrides and ``--max-iters``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Optional

from voxmmsd.finetune.config import FinetuneConfig
from voxmmsd.jobs.config import leaf_paths, load, merge

#: the defaults of a warm start from a trained model
WARM_START: Dict[str, Dict[str, Any]] = {
    "train": {"iterations": 200, "epoch_iters": 50, "lr": 2e-4, "lr_end": 1e-5, "lr_warmup": 0.0,
              "log_every": 10},
    "data": {"val": 0, "train": None},
    "validation": {"at_start": False},
    "init": {"keep_head": True},
    "package": {"onnx": True},
}
#: used when the starting model records no recipe (a size a CPU can train)
FALLBACK: Dict[str, Dict[str, Any]] = {"data": {"patch_size": [64, 64, 64]}}
#: what changes when the fine-tune starts from a pre-training run (its output layer never learnt labels)
FROM_PRETRAINING: Dict[str, Dict[str, Any]] = {
    "train": {"lr": 1e-3, "lr_warmup": 0.1},  # 20 of the 200 iterations
    "init": {"keep_head": False},
}
#: recipe entries of the starting model that a cohort run never takes over (they name its own data and run)
NOT_INHERITED = ("data.root", "data.train", "data.val", "data.cache_dir", "data.workers", "init.path",
                 "init.keep_head", "package", "train.iterations", "train.epoch_iters", "train.lr",
                 "train.lr_end", "train.lr_warmup", "train.final_lr", "train.warmup_iters", "validation")


def _known(cfg: Mapping[str, Any], prefix: str = "") -> Dict[str, Any]:
    """The entries of a saved recipe that this version of the settings still knows (older or newer
    packages may carry others), without :data:`NOT_INHERITED`."""
    known = set(leaf_paths(FinetuneConfig))
    out: Dict[str, Any] = {}
    for key, value in cfg.items():
        path = f"{prefix}{key}"
        if any(path == n or path.startswith(n + ".") for n in NOT_INHERITED):
            continue
        if isinstance(value, Mapping):
            inner = _known(value, path + ".")
            if inner:
                out[key] = inner
        elif path in known:
            out[key] = value
    return out


def single_network(network: Mapping[str, Any]) -> Dict[str, Any]:
    """The network settings of one member: a fold ensemble (``members`` > 1) is fine-tuned or pre-trained as
    one U-Net of its members' shape, started from its first member (:func:`voxmmsd.finetune.init.initialise`)."""
    return {k: v for k, v in network.items() if k != "members"}


def inherited(meta: Mapping[str, Any]) -> Dict[str, Any]:
    """What a cohort run takes over from a model's ``model.json``: its recipe (if any), network and
    preprocessing, and the loss its output implies."""
    training = meta.get("training") or {}
    recipe = training.get("config") if isinstance(training, Mapping) else None
    out = _known(recipe) if isinstance(recipe, Mapping) else {}
    out = merge(out, {"network": single_network(meta["network"]), "preprocessing": dict(meta["preprocessing"])})
    output = (meta.get("inference") or {}).get("output", "classes")
    return merge(out, {"train": {"loss": "regions" if output == "regions" else "dice_ce"}})


def pretraining_settings(run: Path) -> Dict[str, Any]:
    """The network and preprocessing of a pre-training run (its ``config.yaml``)."""
    from voxmmsd.jobs.config import read_yaml
    from voxmmsd.jobs.run_folder import RunFolder

    path = RunFolder(Path(run)).config
    if not path.is_file():
        return {}
    saved = read_yaml(path)
    return {k: saved[k] for k in ("network", "preprocessing") if isinstance(saved.get(k), Mapping)}


def cohort_config(start_meta: Mapping[str, Any], start_folder: Path, init: Optional[Path] = None,
                  config_file: Optional[Path] = None, overrides: Iterable[str] = (),
                  max_iters: Optional[int] = None) -> FinetuneConfig:
    """The :class:`FinetuneConfig` of a cohort run (see the module docstring)."""
    base = merge(merge(FALLBACK, inherited(start_meta)), WARM_START)
    base = merge(base, {"init": {"path": str(Path(start_folder).resolve())}})
    if init is not None:
        base = merge(base, FROM_PRETRAINING)
        base = merge(base, pretraining_settings(Path(init)))
        base = merge(base, {"init": {"path": str(Path(init).resolve())}})
    cfg = load(FinetuneConfig, config_file, list(overrides), base)
    if max_iters is not None:
        cfg = FinetuneConfig.from_dict(merge(cfg.to_dict(), {"train": {"iterations": int(max_iters)}}))
    return cfg
