"""The fine-tuning loop: patches -> Dice + CE -> per-epoch validation -> best checkpoint -> model package.

Run folder (only rank 0 writes): ``config.yaml``, ``events.jsonl`` (stages ``preprocess``,
``finetune``, ``validate``), ``log.txt``, ``metrics.csv``, ``loss.png``, ``tensorboard/``,
``checkpoints/last.pt`` and ``best.pt`` (atomic), and the model package ``model/``.

SIGINT/SIGTERM finish the current iteration, write ``last.pt``, emit ``stopped`` and
return normally; ``resume=True`` continues from ``last.pt`` with the same schedule.
Under ``torchrun`` every rank trains on its own patches and DDP averages gradients;
the stop request is shared so that all ranks stop at the same iteration.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from voxmmsd.errors import VoxMMSDError
from voxmmsd.finetune import records
from voxmmsd.finetune.config import FinetuneConfig
from voxmmsd.finetune.data import PatchStream, make_loader
from voxmmsd.finetune.init import initialise
from voxmmsd.finetune.loss import dice_ce_loss
from voxmmsd.finetune.prepare import Cases, build_optimizer, check_new_run, init_summary, prepare_cases
from voxmmsd.finetune.validate import validate
from voxmmsd.io.atomic import ensure_writable_dir, write_text
from voxmmsd.jobs.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from voxmmsd.jobs.device import autocast_dtype, select_device
from voxmmsd.jobs.distributed import DistInfo, all_reduce_mean, barrier, cleanup, init_distributed
from voxmmsd.jobs.events import EventWriter
from voxmmsd.jobs.schedules import cosine_schedule
from voxmmsd.jobs.stop import StopFlag
from voxmmsd.nets.unet import VoxUNet

log = logging.getLogger(__name__)

STAGE = "finetune"


@dataclass
class RunResult:
    run_dir: Path
    status: str  # "done" or "stopped"
    iteration: int
    best: Dict[str, Any] = field(default_factory=dict)
    package: Optional[Path] = None
    history: List[Dict[str, Any]] = field(default_factory=list)


@dataclass
class State:
    """What a checkpoint restores besides the weights."""

    iteration: int = 0
    best: Dict[str, Any] = field(default_factory=lambda: {"dice": None, "iteration": 0, "regions": {}})
    history: List[Dict[str, Any]] = field(default_factory=list)
    elapsed: float = 0.0


def finetune(data_dir: Path, run_dir: Path, cfg: FinetuneConfig, *, resume: bool = False,
             device: str = "auto", stop: Optional[StopFlag] = None) -> RunResult:
    """Fine-tune on the labelled cases of ``data_dir`` into ``run_dir``; see the module docstring."""
    dist = init_distributed()
    run_dir = Path(run_dir)
    handler = None
    if dist.is_main:
        ensure_writable_dir(run_dir)
        if not resume:
            check_new_run(run_dir)
        handler = records.attach_log_file(run_dir / "log.txt")
    events = EventWriter(run_dir / "events.jsonl", enabled=dist.is_main)
    try:
        with (stop or StopFlag()) as flag:
            return _run(Path(data_dir), run_dir, cfg, resume, device, dist, events, flag)
    except VoxMMSDError as exc:
        events.emit(STAGE, "error", message=str(exc))
        raise
    except Exception as exc:
        events.emit(STAGE, "error", message=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        events.close()
        if handler is not None:
            records.detach_log_file(handler)
        cleanup(dist)


def _run(data_dir: Path, run_dir: Path, cfg: FinetuneConfig, resume: bool, device: str, dist: DistInfo,
         events: EventWriter, flag: StopFlag) -> RunResult:
    dev = select_device(device, dist.local_rank)
    amp = autocast_dtype(dev, cfg.train.precision)
    if dist.is_main:
        write_text(run_dir / "config.yaml", cfg.to_yaml())
    torch.manual_seed(cfg.train.seed + dist.rank)
    np.random.seed((cfg.train.seed + dist.rank) % (2 ** 32))
    cases = prepare_cases(data_dir, cfg, run_dir, dist, events)

    model = VoxUNet(cfg.network)
    ckpt = load_checkpoint(run_dir / "checkpoints" / "last.pt") if resume else None
    init = initialise(model, Path(cfg.init.path), cfg.init.keep_head) if cfg.init.path and ckpt is None else None
    model.to(dev)
    opt = build_optimizer(model, cfg)
    scaler = torch.amp.GradScaler(dev.type) if amp == torch.float16 else None
    state = State()
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        if scaler is not None and ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        state = State(int(ckpt["iteration"]), ckpt["best"], list(ckpt["history"]), float(ckpt.get("elapsed", 0.0)))
        set_rng_state(ckpt["rng"])
        init_info = ckpt.get("init", {"source": None})
    else:
        init_info = init_summary(init)
    t = cfg.train
    lrs = cosine_schedule(t.lr, t.final_lr, t.iterations, t.warmup_iters if cfg.init.path else 0, t.lr * 0.01)
    net = torch.nn.parallel.DistributedDataParallel(model) if dist.enabled else model
    stream = PatchStream(cases.folder, cases.train, cfg.data.patch_size, cfg.network.num_classes,
                         cfg.data.foreground_ratio, cfg.data.augment, cfg.data.sequence_dropout,
                         seed=t.seed + 7919 * dist.rank + state.iteration)
    loader = make_loader(stream, cfg.data.batch_size, cfg.data.workers, pin_memory=dev.type == "cuda")
    events.emit(STAGE, "start", iteration=state.iteration, total=t.iterations, resumed=ckpt is not None,
                train_cases=len(cases.train), val_cases=len(cases.val), device=str(dev),
                precision=str(amp).replace("torch.", "") if amp else "fp32", world_size=dist.world_size,
                init=init_info, message=_init_message(init_info))
    board = records.Board(run_dir / "tensorboard" if dist.is_main else None)
    try:
        status = _train(net, model, loader, opt, scaler, amp, dev, lrs, cfg, cases, state, run_dir, dist, events,
                        board, flag, init_info)
    finally:
        board.close()
    package = None
    if status == "done" and dist.is_main:
        from voxmmsd.finetune.package import write_package

        package = write_package(run_dir, model, cfg, cases, state, init_info, data_dir)
        events.emit(STAGE, "done", iteration=state.iteration, total=t.iterations, best=state.best,
                    outputs={"model": str(package), "metrics": str(run_dir / "metrics.csv"),
                             "checkpoint": str(run_dir / "checkpoints" / "last.pt")})
    barrier(dist)
    return RunResult(run_dir, status, state.iteration, state.best, package, state.history)


def _init_message(info: Dict[str, Any]) -> str:
    if not info.get("source"):
        return "network initialised at random"
    return (f"initialised from {info['source']}: {info['loaded']} tensors loaded, "
            f"{len(info.get('skipped', {}))} skipped, {len(info.get('missing', []))} left at random")


def _step(net: torch.nn.Module, batch: Dict[str, torch.Tensor], opt: torch.optim.Optimizer, scaler: Any,
          amp: Optional[torch.dtype], dev: torch.device, grad_clip: float) -> Dict[str, float]:
    image = batch["image"].to(dev, non_blocking=True)
    label = batch["label"].to(dev, non_blocking=True)
    opt.zero_grad(set_to_none=True)
    ctx = torch.autocast(dev.type, dtype=amp) if amp is not None else contextlib.nullcontext()
    with ctx:
        logits = net(image)
    loss, parts = dice_ce_loss(logits, label)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
    else:
        loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
    if scaler is not None:
        scaler.step(opt)
        scaler.update()
    else:
        opt.step()
    return parts


def _stop_requested(flag: StopFlag, dist: DistInfo) -> bool:
    if not dist.enabled:
        return flag.requested
    return bool(all_reduce_mean(torch.tensor([1.0 if flag.requested else 0.0]), dist).item() > 0)


def _train(net, model, loader, opt, scaler, amp, dev, lrs, cfg: FinetuneConfig, cases: Cases, state: State,
           run_dir: Path, dist: DistInfo, events: EventWriter, board: records.Board, flag: StopFlag,
           init_info: Dict[str, Any]) -> str:
    t = cfg.train
    net.train()
    sums: Dict[str, float] = {}
    count = 0
    window: List[Dict[str, float]] = []
    started, first = time.time(), state.iteration
    if state.iteration == 0 and cfg.validation.at_start and cases.val:
        _end_epoch(model, cfg, cases, state, {}, float(lrs[0]), run_dir, dist, events, board, opt, scaler, amp, dev,
                   init_info, 0.0)
    batches = iter(loader)
    for it in range(state.iteration, t.iterations):
        lr = float(lrs[it])
        for g in opt.param_groups:
            g["lr"] = lr
        parts = _step(net, next(batches), opt, scaler, amp, dev, t.grad_clip)
        if not all(np.isfinite(v) for v in parts.values()):
            raise VoxMMSDError(f"The loss became {parts['loss']} at iteration {it + 1}. Lower train.lr "
                               f"(e.g. --set train.lr={t.lr / 10:g}) or use --set train.precision=fp32.")
        for k, v in parts.items():
            sums[k] = sums.get(k, 0.0) + v
        count += 1
        window.append(parts)
        state.iteration = it + 1
        done_its = state.iteration - first
        per_it = (time.time() - started) / done_its
        if done_its == 1 or state.iteration % t.log_every == 0 or state.iteration == t.iterations:
            avg = {k: float(np.mean([w[k] for w in window])) for k in parts}
            events.emit(STAGE, "progress", iteration=state.iteration, total=t.iterations, losses=avg, lr=lr,
                        eta_s=round(per_it * (t.iterations - state.iteration), 1))
            board.scalars(state.iteration, {f"train/{k}": v for k, v in avg.items()} | {"train/lr": lr})
            window = []
        stopping = _stop_requested(flag, dist)
        if state.iteration % t.epoch_iters == 0 or state.iteration == t.iterations:
            mean_losses = {k: v / max(count, 1) for k, v in sums.items()}
            _end_epoch(model, cfg, cases, state, mean_losses, lr, run_dir, dist, events, board, opt, scaler,
                       amp, dev, init_info, state.elapsed + time.time() - started)
            sums, count = {}, 0
        if stopping:
            state.elapsed += time.time() - started
            if dist.is_main:
                path = _save_last(model, opt, scaler, state, cfg, run_dir, init_info)
                events.emit(STAGE, "checkpoint", iteration=state.iteration, total=t.iterations, path=str(path))
                events.emit(STAGE, "stopped", iteration=state.iteration, total=t.iterations,
                            message=f"stopped by {flag.signal_name}; continue with --resume {run_dir}")
            barrier(dist)
            return "stopped"
    state.elapsed += time.time() - started
    return "done"


def _end_epoch(model, cfg: FinetuneConfig, cases: Cases, state: State, losses: Dict[str, float], lr: float,
               run_dir: Path, dist: DistInfo, events: EventWriter, board: records.Board, opt, scaler, amp, dev,
               init_info: Dict[str, Any], elapsed: float) -> None:
    """Validate (rank 0), record the epoch, write ``last.pt`` and, if validation Dice improved, ``best.pt``."""
    epoch = -(-state.iteration // cfg.train.epoch_iters)
    if dist.is_main:
        val = None
        if cases.val:
            from voxmmsd.data.cache import open_case

            ids = cases.val[: cfg.validation.max_cases or None]
            result = validate(model, [open_case(cases.folder, c) for c in ids], cfg.data.patch_size,
                              cfg.validation.overlap, cfg.validation.blend, dev, amp)
            val = result["mean"]
            events.emit("validate", "validation", iteration=state.iteration, total=cfg.train.iterations,
                        epoch=epoch, dice=val, mean_dice=result["dice"], per_case=result["per_case"])
            board.scalars(state.iteration, {f"val/{k}": v for k, v in val.items()} | {"val/mean": result["dice"]})
            if state.best.get("dice") is None or result["dice"] > state.best["dice"]:
                state.best = {"dice": result["dice"], "iteration": state.iteration, "regions": val}
                save_checkpoint({"model": model.state_dict(), "iteration": state.iteration, "best": state.best,
                                 "config": cfg.to_dict()}, run_dir / "checkpoints" / "best.pt")
                events.emit(STAGE, "checkpoint", iteration=state.iteration, total=cfg.train.iterations,
                            path=str(run_dir / "checkpoints" / "best.pt"), best=True)
        state.history.append(records.history_row(epoch, state.iteration, losses, lr, val, elapsed))
        records.write_metrics_csv(run_dir / "metrics.csv", state.history)
        records.plot_curves(run_dir / "loss.png", state.history)
        path = _save_last(model, opt, scaler, state, cfg, run_dir, init_info)
        events.emit(STAGE, "checkpoint", iteration=state.iteration, total=cfg.train.iterations, path=str(path))
    barrier(dist)


def _save_last(model, opt, scaler, state: State, cfg: FinetuneConfig, run_dir: Path,
               init_info: Dict[str, Any]) -> Path:
    return save_checkpoint({
        "model": model.state_dict(), "optimizer": opt.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else {},
        "iteration": state.iteration, "best": state.best, "history": state.history, "elapsed": state.elapsed,
        "rng": rng_state(), "config": cfg.to_dict(), "init": init_info,
    }, run_dir / "checkpoints" / "last.pt")
