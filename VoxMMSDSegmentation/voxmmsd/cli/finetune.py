"""``voxmmsd finetune``: train a segmentation model from labelled cases, optionally from pre-trained weights."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any, Dict, List

from voxmmsd.cli.run_options import STOP_RESUME, add_run_options

log = logging.getLogger(__name__)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "finetune", help="fine-tune a segmentation model on labelled cases (optionally from pre-trained weights)",
        description="Train the U-Net on labelled cases (case folders with a seg file, or nnU-Net imagesTr/labelsTr) "
                    "with Dice + cross-entropy on patches; validate every epoch by sliding window; keep the best "
                    "checkpoint; write RUN/model/ (a model package 'voxmmsd segment --model RUN/model' runs). "
                    + STOP_RESUME)
    p.add_argument("--data", type=Path, help="labelled data set folder (optional with --resume)")
    p.add_argument("--init", help="pre-training run folder, weights (.safetensors) or PyMIC checkpoint (.pt)")
    p.add_argument("--labels", choices=("auto", "brats2023", "legacy"),
                   help="label convention of the label files (default: auto, detected per case)")
    p.add_argument("--train", help="training cases: a number, a fraction, or comma-separated case ids "
                                   "(default: every case not used for validation)")
    p.add_argument("--val", help="validation cases: a number, a fraction or case ids (default 0.2)")
    add_run_options(p, "--set network.channels=[8,16,32,64,128] --set preprocessing.spacing=[2,2,2] "
                       "--set data.patch_size=[64,64,64]", "settings file (sections data:, train:, ...)")
    p.set_defaults(func=run)


def _selection(text: str) -> Any:
    import yaml

    value = yaml.safe_load(text)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return [v.strip() for v in str(text).split(",") if v.strip()]


def cli_settings(args: argparse.Namespace) -> Dict[str, Dict[str, Any]]:
    """The settings given by dedicated options (they win over --config and --set)."""
    out: Dict[str, Dict[str, Any]] = {}
    if args.data is not None:
        out.setdefault("data", {})["root"] = str(Path(args.data).resolve())
    if args.labels:
        out.setdefault("data", {})["labels"] = args.labels
    for key in ("train", "val"):
        if getattr(args, key) is not None:
            out.setdefault("data", {})[key] = _selection(getattr(args, key))
    if args.init:
        out.setdefault("init", {})["path"] = str(Path(args.init).resolve())
    if args.max_iters is not None:
        out.setdefault("train", {})["iterations"] = args.max_iters
    return out


def run(args: argparse.Namespace) -> int:
    from voxmmsd.errors import ConfigError
    from voxmmsd.finetune.config import load_config, merge
    from voxmmsd.jobs.run_folder import RunFolder

    base: Dict[str, Any] = {}
    if args.resume is not None:
        run_dir = Path(args.resume)
        if args.out is not None and Path(args.out).resolve() != run_dir.resolve():
            raise ConfigError(f"--resume {run_dir} continues that run in place; leave out --out {args.out}.")
        base = RunFolder(run_dir).saved_settings("fine-tuning")  # the run's own; changes are checked by the engine
    elif args.out is None:
        raise ConfigError("Give the run folder to create with --out RUN (or --resume RUN to continue one).")
    else:
        run_dir = Path(args.out)
    overrides: List[str] = list(args.overrides)
    cfg = load_config(args.config, overrides, base)
    cfg = load_config(None, (), merge(cfg.to_dict(), cli_settings(args)))
    if not cfg.data.root:
        raise ConfigError("Give the labelled data set folder with --data DIR.")
    from voxmmsd.finetune.loop import finetune

    result = finetune(Path(cfg.data.root), run_dir, cfg, resume=args.resume is not None, device=args.device,
                      allow_changed=args.allow_changed_settings)
    if result.status == "stopped":
        print(f"Stopped at iteration {result.iteration}. Continue with: voxmmsd finetune --resume {run_dir}")
    else:
        best = result.best.get("dice")
        extra = f", best validation Dice {best:.3f} at iteration {result.best.get('iteration')}" if best is not None \
            else ""
        print(f"Done: {result.iteration} iterations{extra}. Model package: {result.package}")
    return 0
