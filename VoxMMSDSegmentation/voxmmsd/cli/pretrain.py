"""``voxmmsd pretrain``: self-supervised Vox-MMSD pre-training on unlabelled four-sequence cases."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Dict

from voxmmsd.cli.run_options import STOP_RESUME, add_run_options
from voxmmsd.errors import ConfigError


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "pretrain", help="self-supervised pre-training (SiaBloMM + ORMS + multi-scale self-distillation)",
        description="Pre-train the U-Net on unlabelled cases (labels, if present, are ignored). Writes "
                    "RUN/config.yaml, events.jsonl, log.txt, checkpoints/last.pt, tensorboard/, loss.png and "
                    "backbone.safetensors (load it into fine-tuning with --init). Several GPUs: torchrun "
                    "--nproc_per_node=N -m voxmmsd pretrain ... " + STOP_RESUME)
    p.add_argument("--data", type=Path, help="data set folder (one sub-folder per case, or nnU-Net imagesTr/)")
    add_run_options(p, "--set data.patch_size=64,64,64 --set network.channels=16,32,64,128,256 "
                       "--set augment.blur_prob=0.5", "settings file (see docs/pretraining.md)")
    p.add_argument("--cache", type=Path, help="preprocessing cache folder (default: per-user cache)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (events.jsonl is still written)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from voxmmsd.jobs.config import merge
    from voxmmsd.jobs.run_folder import RunFolder
    from voxmmsd.pretrain.config import load_config
    from voxmmsd.pretrain.loop import run_pretraining

    if args.max_iters is not None and args.max_iters <= 0:
        raise ConfigError(f"--max-iters must be positive, got {args.max_iters}.")
    data: Dict[str, Any] = {}
    if args.data is not None:
        data["root"] = str(args.data)
    if args.cache is not None:
        data["cache_dir"] = str(args.cache)
    base: Dict[str, Any] = {"data": data} if data else {}
    if args.resume is not None:
        if args.out is not None and Path(args.out).resolve() != Path(args.resume).resolve():
            raise ConfigError("--resume RUN writes into RUN; leave out --out (or give the same folder).")
        folder = RunFolder(args.resume)
        folder.require_checkpoint("pre-training")
        cfg = None
        if args.config is not None or args.overrides or base:
            saved = folder.saved_settings("pre-training")
            cfg = load_config(None, [], base=merge(load_config(args.config, args.overrides, saved).to_dict(), base))
        return run_pretraining(cfg, args.resume, resume=True, device=args.device, max_iters=args.max_iters,
                               show_progress=not args.no_progress, allow_changed=args.allow_changed_settings)
    if args.out is None:
        raise ConfigError("Give the run folder with --out RUN (or --resume RUN to continue one).")
    cfg = load_config(args.config, args.overrides)
    cfg = load_config(None, [], base=merge(cfg.to_dict(), base))
    return run_pretraining(cfg, args.out, resume=False, device=args.device, max_iters=args.max_iters,
                           show_progress=not args.no_progress)
