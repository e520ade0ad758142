"""The fine-tuning loop: patches -> Dice + CE -> per-epoch validation -> best checkpoint -> model package.

The run folder's files are named by :class:`~voxmmsd.jobs.run_folder.RunFolder`
(config.yaml, events.jsonl with stages ``preprocess``, ``finetune`` and ``validate``,
log.txt, metrics.csv, loss.png, tensorboard/, checkpoints/last.pt and best.pt, model/);
only rank 0 writes, through a :class:`~voxmmsd.jobs.recorder.Recorder`.

The run holds the folder's lock throughout. SIGINT/SIGTERM or ``RUN/stop.requested``
finish the current iteration, write ``last.pt``, emit ``stopped`` and return normally;
``resume=True`` continues from ``last.pt`` exactly: the checkpoint holds every random
state, the running sums of the epoch (so ``metrics.csv`` covers whole epochs) and the
log window, and the patches are a function of the global sample number
(:meth:`~voxmmsd.finetune.data.PatchStream.sample_rng`), so the losses equal those of an
uninterrupted run (deterministic CPU). Under ``torchrun`` every rank trains on its own
patches and DDP averages gradients; the stop request is shared so all ranks stop together.

:class:`Trainer` has the shape both training commands share: ``iteration``, ``state()``,
``load(checkpoint)`` and ``step(batch) -> values``.
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
from voxmmsd.finetune.init import initialise, input_mismatch
from voxmmsd.finetune.loss import training_loss
from voxmmsd.finetune.prepare import Cases, build_optimizer, init_summary, prepare_cases
from voxmmsd.finetune.validate import output_kind, validate
from voxmmsd.io.atomic import write_text
from voxmmsd.jobs.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from voxmmsd.jobs.config import resume_config
from voxmmsd.jobs.device import autocast_dtype, select_device
from voxmmsd.jobs.distributed import DistInfo, barrier, cleanup, init_distributed
from voxmmsd.jobs.recorder import Recorder
from voxmmsd.jobs.run_folder import RunFolder
from voxmmsd.jobs.schedules import cosine_schedule, warmup_steps
from voxmmsd.jobs.session import stop_agreed, training_session
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


class Trainer:
    """Network, optimiser, schedule and bookkeeping of one fine-tuning run (what a checkpoint restores)."""

    def __init__(self, cfg: FinetuneConfig, device: torch.device, dist: DistInfo, init_info: Dict[str, Any],
                 model: VoxUNet) -> None:
        t = cfg.train
        self.cfg, self.device, self.dist, self.init_info = cfg, device, dist, init_info
        self.model = model.to(device)
        self.memory_format = torch.channels_last_3d if t.channels_last else torch.contiguous_format
        if t.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
        self.optimizer = build_optimizer(self.model, cfg)
        self.amp = autocast_dtype(device, t.precision)
        self.scaler = torch.amp.GradScaler(device.type) if self.amp == torch.float16 else None
        warmup = warmup_steps(t.lr_warmup, t.iterations) if cfg.init.path else 0
        self.lrs = cosine_schedule(t.lr, t.lr_end, t.iterations, warmup, t.lr * 0.01)
        self.net = torch.nn.parallel.DistributedDataParallel(self.model) if dist.enabled else self.model
        self.loss_fn = training_loss(t.loss)
        self.iteration = 0
        self.best: Dict[str, Any] = {"dice": None, "iteration": 0, "regions": {}}
        self.history: List[Dict[str, Any]] = []
        self.elapsed = 0.0
        self.epoch_sums: Dict[str, float] = {}  # losses summed over the epoch so far
        self.epoch_count = 0
        self.window: List[Dict[str, float]] = []  # iterations since the last progress event

    def state(self) -> Dict[str, Any]:
        return {"format": "voxmmsd-finetune-2", "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler is not None else {},
                "iteration": self.iteration, "best": self.best, "history": self.history, "elapsed": self.elapsed,
                "epoch": {"sums": dict(self.epoch_sums), "count": self.epoch_count, "window": list(self.window)},
                "rng": rng_state(), "config": self.cfg.to_dict(), "init": self.init_info}

    def load(self, ckpt: Dict[str, Any]) -> None:
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.scaler is not None and ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        self.iteration = int(ckpt["iteration"])
        self.best, self.history = ckpt["best"], list(ckpt["history"])
        self.elapsed = float(ckpt.get("elapsed", 0.0))
        epoch = ckpt.get("epoch") or {}
        self.epoch_sums = {k: float(v) for k, v in (epoch.get("sums") or {}).items()}
        self.epoch_count = int(epoch.get("count", 0))
        self.window = [{k: float(v) for k, v in w.items()} for w in epoch.get("window") or []]
        self.init_info = ckpt.get("init", {"source": None})
        set_rng_state(ckpt["rng"])

    @property
    def lr(self) -> float:
        return float(self.lrs[min(self.iteration, len(self.lrs) - 1)])

    def step(self, batch: Dict[str, torch.Tensor]) -> Dict[str, float]:
        """One iteration; returns the loss parts and ``lr``."""
        lr = float(self.lrs[self.iteration])
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        self.net.train()
        image = batch["image"].to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
        label = batch["label"].to(self.device, non_blocking=True)
        self.optimizer.zero_grad(set_to_none=True)
        ctx = torch.autocast(self.device.type, dtype=self.amp) if self.amp is not None else contextlib.nullcontext()
        with ctx:
            logits = self.net(image)
        loss, parts = self.loss_fn(logits, label)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        if self.cfg.train.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.cfg.train.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.iteration += 1
        if not all(np.isfinite(v) for v in parts.values()):
            t = self.cfg.train
            raise VoxMMSDError(f"The loss became {parts['loss']} at iteration {self.iteration}. Lower train.lr "
                               f"(e.g. --set train.lr={t.lr / 10:g}) or use --set train.precision=fp32.")
        for k, v in parts.items():
            self.epoch_sums[k] = self.epoch_sums.get(k, 0.0) + float(v)
        self.epoch_count += 1
        self.window.append({k: float(v) for k, v in parts.items()})
        return dict(parts, lr=lr)

    def take_epoch_means(self) -> Dict[str, float]:
        means = {k: v / max(self.epoch_count, 1) for k, v in self.epoch_sums.items()}
        self.epoch_sums, self.epoch_count = {}, 0
        return means

    def take_window_means(self) -> Dict[str, float]:
        keys = self.window[0].keys() if self.window else ()
        means = {k: float(np.mean([w[k] for w in self.window])) for k in keys}
        self.window = []
        return means


def finetune(data_dir: Path, run_dir: Path, cfg: FinetuneConfig, *, resume: bool = False,
             device: str = "auto", stop: Optional[StopFlag] = None, allow_changed: bool = False) -> RunResult:
    """Fine-tune on the labelled cases of ``data_dir`` into ``run_dir``; see the module docstring.

    Resuming, ``cfg`` may differ from the run's saved settings only in ``train.iterations``
    unless ``allow_changed`` (the rule of :func:`voxmmsd.jobs.config.resume_config`).
    """
    run = RunFolder(run_dir)
    if resume:
        run.require_checkpoint("fine-tuning")
    dist = init_distributed()
    try:
        with training_session(run, "fine-tuning run", dist, stop) as flag:
            if dist.is_main and not resume:
                run.require_new()
            ckpt = load_checkpoint(run.last_checkpoint) if resume else None
            if ckpt is not None:
                cfg = resume_config(FinetuneConfig, ckpt["config"], cfg.to_dict(), allow_changed=allow_changed)
            rec = Recorder(run, STAGE, dist.is_main, resume_from=int(ckpt["iteration"]) if ckpt is not None else None)
            try:
                return _run(Path(data_dir), run, cfg, ckpt, device, dist, rec, flag)
            except VoxMMSDError as exc:
                rec.emit("error", message=str(exc))
                raise
            except Exception as exc:
                rec.emit("error", message=f"{type(exc).__name__}: {exc}")
                raise
            finally:
                rec.close()
    finally:
        cleanup(dist)


def _run(data_dir: Path, run: RunFolder, cfg: FinetuneConfig, ckpt: Optional[Dict[str, Any]], device: str,
         dist: DistInfo, rec: Recorder, flag: StopFlag) -> RunResult:
    dev = select_device(device, dist.local_rank)
    if dist.is_main:
        write_text(run.config, cfg.to_yaml())
    t = cfg.train
    torch.manual_seed(t.seed + dist.rank)
    np.random.seed((t.seed + dist.rank) % (2 ** 32))
    cases = prepare_cases(data_dir, cfg, run.root, dist, rec.events)

    model = VoxUNet(cfg.network)
    init = initialise(model, Path(cfg.init.path), cfg.init.keep_head) if cfg.init.path and ckpt is None else None
    mismatches = input_mismatch(init.metadata, cfg.preprocessing) if init is not None else []
    for diff in mismatches:
        log.warning("--init %s was trained on other inputs: %s. Its features may not fit; pre-train with the "
                    "fine-tuning's preprocessing settings, or set them to the weights'.", cfg.init.path, diff)
    trainer = Trainer(cfg, dev, dist, init_summary(init), model)
    if ckpt is not None:
        trainer.load(ckpt)
    stream = PatchStream(cases.folder, cases.train, cfg.data.patch_size, cfg.network.num_classes,
                         cfg.data.foreground_ratio, cfg.data.augment, cfg.data.sequence_dropout,
                         seed=t.seed + 7919 * dist.rank, clinical=cfg.data.clinical_sim,
                         spacing_mm=min(cfg.preprocessing.spacing) if cfg.preprocessing.spacing else 1.0,
                         channel_jitter=cfg.data.channel_jitter)
    stream.positioned(trainer.iteration, cfg.data.batch_size)
    loader = make_loader(stream, cfg.data.batch_size, cfg.data.workers, pin_memory=dev.type == "cuda",
                         generator=torch.Generator().manual_seed(t.seed))  # the global RNG stays untouched
    rec.emit("start", iteration=trainer.iteration, total=t.iterations, resumed=ckpt is not None,
             train_cases=len(cases.train), val_cases=len(cases.val), device=str(dev),
             precision=str(trainer.amp).replace("torch.", "") if trainer.amp else "fp32", world_size=dist.world_size,
             init=trainer.init_info, message=_init_message(trainer.init_info), dropped_events=rec.dropped_events)
    status = _train(trainer, loader, cases, run, rec, flag)
    package = None
    if status == "done" and dist.is_main:
        from voxmmsd.finetune.package import write_package

        package = write_package(run.root, trainer.model, cfg, cases, trainer, trainer.init_info, data_dir)
        rec.emit("done", iteration=trainer.iteration, total=t.iterations, best=trainer.best,
                 outputs={"model": str(package), "metrics": str(run.metrics), "checkpoint": str(run.last_checkpoint)})
    barrier(dist)
    return RunResult(run.root, status, trainer.iteration, trainer.best, package, trainer.history)


def _init_message(info: Dict[str, Any]) -> str:
    if not info.get("source"):
        return "network initialised at random"
    return (f"initialised from {info['source']}: {info['loaded']} tensors loaded, "
            f"{len(info.get('skipped', {}))} skipped, {len(info.get('missing', []))} left at random")


def _train(trainer: Trainer, loader: Any, cases: Cases, run: RunFolder, rec: Recorder, flag: StopFlag) -> str:
    cfg, t, dist = trainer.cfg, trainer.cfg.train, trainer.dist
    started, first = time.time(), trainer.iteration
    if trainer.iteration == 0 and cfg.validation.at_start and cases.val:
        _end_epoch(trainer, cases, {}, run, rec, 0.0)
    batches = iter(loader)
    while trainer.iteration < t.iterations:
        parts = trainer.step(next(batches))
        it = trainer.iteration
        per_it = (time.time() - started) / (it - first)
        if it % t.log_every == 0 or it == t.iterations:
            avg = trainer.take_window_means()
            rec.emit("progress", iteration=it, total=t.iterations, losses=avg, lr=parts["lr"],
                     eta_s=round(per_it * (t.iterations - it), 1))
            rec.scalars(it, {**{f"train/{k}": v for k, v in avg.items()}, "train/lr": parts["lr"]})
        elif it == first + 1:  # something to show soon after a (re)start; the window keeps running
            rec.emit("progress", iteration=it, total=t.iterations,
                     losses={k: v for k, v in parts.items() if k != "lr"}, lr=parts["lr"],
                     eta_s=round(per_it * (t.iterations - it), 1))
        stopping = stop_agreed(flag, dist, trainer.device)
        if it % t.epoch_iters == 0 or it == t.iterations:
            _end_epoch(trainer, cases, trainer.take_epoch_means(), run, rec,
                       trainer.elapsed + time.time() - started, lr=parts["lr"])
        if stopping:
            trainer.elapsed += time.time() - started
            if dist.is_main:
                path = save_checkpoint(trainer.state(), run.last_checkpoint)
                rec.emit("checkpoint", iteration=it, total=t.iterations, path=str(path))
                rec.emit("stopped", iteration=it, total=t.iterations,
                         message=f"stopped by {flag.signal_name}; continue with --resume {run.root}")
            barrier(dist)
            return "stopped"
    trainer.elapsed += time.time() - started
    return "done"


def _end_epoch(trainer: Trainer, cases: Cases, losses: Dict[str, float], run: RunFolder, rec: Recorder,
               elapsed: float, lr: Optional[float] = None) -> None:
    """Validate (rank 0), record the epoch, write ``last.pt`` and, if validation Dice improved, ``best.pt``."""
    cfg = trainer.cfg
    epoch = -(-trainer.iteration // cfg.train.epoch_iters)
    if trainer.dist.is_main:
        val: Optional[Dict[str, float]] = None
        if cases.val:
            from voxmmsd.data.cache import open_case

            ids = cases.val[: cfg.validation.max_cases or None]
            result = validate(trainer.model, [open_case(cases.folder, c) for c in ids], trainer.device,
                              trainer.amp, output=output_kind(cfg))
            val = dict(result["mean"])  # type: ignore[call-overload]
            rec.emit("validation", stage="validate", iteration=trainer.iteration, total=cfg.train.iterations,
                     epoch=epoch, dice=val, mean_dice=result["dice"], per_case=result["per_case"])
            rec.scalars(trainer.iteration, {**{f"val/{k}": v for k, v in val.items()}, "val/mean": result["dice"]})
            if trainer.best.get("dice") is None or result["dice"] > trainer.best["dice"]:
                trainer.best = {"dice": result["dice"], "iteration": trainer.iteration, "regions": val}
                save_checkpoint({"model": trainer.model.state_dict(), "iteration": trainer.iteration,
                                 "best": trainer.best, "config": cfg.to_dict()}, run.best_checkpoint)
                rec.emit("checkpoint", iteration=trainer.iteration, total=cfg.train.iterations,
                         path=str(run.best_checkpoint), best=True)
        trainer.history.append(records.history_row(epoch, trainer.iteration, losses,
                                                   trainer.lr if lr is None else lr, val, elapsed))
        records.write_metrics_csv(run.metrics, trainer.history)
        rec.plot(records.plot_curves, trainer.history)
        rec.flush()
        path = save_checkpoint(trainer.state(), run.last_checkpoint)
        rec.emit("checkpoint", iteration=trainer.iteration, total=cfg.train.iterations, path=str(path))
    barrier(trainer.dist)
