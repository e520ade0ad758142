"""The pre-training job: data, model, teacher, schedules, the loop, checkpoints, stop/resume, DDP.

The run folder's files are named by :class:`~voxmmsd.jobs.run_folder.RunFolder` (config.yaml,
events.jsonl, log.txt, checkpoints/last.pt, tensorboard/, loss.png, backbone.safetensors);
only rank 0 writes, through a :class:`~voxmmsd.jobs.recorder.Recorder`. The run holds the
folder's lock throughout and stops cleanly (checkpoint + ``stopped`` event) on SIGINT/SIGTERM
or when ``RUN/stop.requested`` appears. A resume continues exactly: the checkpoint holds
every random state and the data are a function of the global sample number, so the
losses equal those of an uninterrupted run (deterministic CPU mode).

:class:`Trainer` has the shape both training commands share: ``iteration``, ``state()``,
``load(checkpoint)`` and ``step(batch) -> values``.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import torch
from torch import nn

from voxmmsd.errors import ConfigError, VoxMMSDError
from voxmmsd.io.atomic import write_text
from voxmmsd.jobs import distributed as dist_utils
from voxmmsd.jobs.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from voxmmsd.jobs.config import resume_config
from voxmmsd.jobs.device import autocast_dtype, select_device
from voxmmsd.jobs.recorder import Recorder
from voxmmsd.jobs.run_folder import RunFolder
from voxmmsd.jobs.session import stop_agreed, training_session
from voxmmsd.jobs.stop import StopFlag
from voxmmsd.pretrain import outputs
from voxmmsd.pretrain.config import PretrainConfig, check, to_yaml
from voxmmsd.pretrain.data import check_crop_fits, default_cache_dir, prepare_cases
from voxmmsd.pretrain.dataset import IterationBatches, PairDataset
from voxmmsd.pretrain.loss import DistillationLoss
from voxmmsd.pretrain.model import PretrainNet
from voxmmsd.pretrain.monitor import CollapseMonitor
from voxmmsd.pretrain.optim import apply_schedules, make_optimizer, make_schedules
from voxmmsd.pretrain.step import compute_losses
from voxmmsd.pretrain.teacher import ema_update, make_teacher

log = logging.getLogger(__name__)
STAGE = "pretrain"


class Trainer:
    """State of a run: student (maybe DDP-wrapped), teacher, loss centre, optimiser, scaler, history."""

    def __init__(self, cfg: PretrainConfig, device: torch.device, info: dist_utils.DistInfo) -> None:
        self.cfg, self.device, self.info = cfg, device, info
        torch.manual_seed(cfg.train.seed)  # same initial weights on every rank
        self.net = PretrainNet.from_config(cfg).to(device)
        if cfg.train.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
        self.teacher = make_teacher(self.net, cfg.method.teacher_bn)
        self.loss_fn = DistillationLoss(cfg.method.out_dim, cfg.method.center_momentum).to(device)
        self.optimizer = make_optimizer(self.net, cfg)
        self.amp_dtype = autocast_dtype(device, cfg.train.precision)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp_dtype == torch.float16)
        self.schedules = make_schedules(cfg)
        self.history: Dict[str, List[float]] = {"iteration": [], "loss": [], "distill": [], "recon": []}
        self.iteration = 0
        self.student: nn.Module = self.net
        if info.enabled:
            ids = [device.index] if device.type == "cuda" else None
            self.student = nn.parallel.DistributedDataParallel(self.net, device_ids=ids)
        torch.manual_seed(cfg.train.seed + 1000 * info.rank)  # dropout differs per rank

    def state(self) -> Dict[str, Any]:
        return {"format": "voxmmsd-pretrain-1", "iteration": self.iteration, "config": self.cfg.to_dict(),
                "student": self.net.state_dict(), "teacher": self.teacher.state_dict(),
                "loss": self.loss_fn.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(), "rng": rng_state(), "history": self.history}

    def load(self, ckpt: Dict[str, Any]) -> None:
        self.net.load_state_dict(ckpt["student"])
        self.teacher.load_state_dict(ckpt["teacher"])
        self.loss_fn.load_state_dict(ckpt["loss"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        self.history = {k: list(v) for k, v in ckpt.get("history", self.history).items()}
        self.iteration = int(ckpt["iteration"])
        set_rng_state(ckpt["rng"])
        if self.info.rank:  # per-rank dropout stream, derived reproducibly from the saved one
            torch.manual_seed(int(torch.randint(0, 2 ** 62, (1,)).item()) + self.info.rank)

    def step(self, batch: Dict[str, torch.Tensor]) -> Dict[str, Any]:
        cfg, it = self.cfg, self.iteration
        values = self.schedules.at(it)
        apply_schedules(self.optimizer, values)
        self.net.train()
        total, parts, t_out = compute_losses(self.student, self.teacher, self.loss_fn, batch, cfg,
                                             values["teacher_temp"], self.device, self.amp_dtype)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        if cfg.train.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.net.parameters(), cfg.train.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        ema_update(self.teacher, self.net, values["ema"])
        reduce = (lambda t: dist_utils.all_reduce_mean(t, self.info)) if self.info.enabled else None
        self.loss_fn.update_center(t_out, reduce)
        self.iteration = it + 1
        losses = {"loss": float(total.detach()), "distill": float(parts["distill"]), "recon": float(parts["recon"])}
        self.history["iteration"].append(self.iteration)
        for k, v in losses.items():
            self.history[k].append(v)
        return dict(losses, lr=values["lr"], teacher_temp=values["teacher_temp"], ema=values["ema"],
                    diagnostics=parts["diagnostics"])


def _loader(cases: List[Any], cfg: PretrainConfig, start: int, device: torch.device,
            info: dist_utils.DistInfo) -> torch.utils.data.DataLoader:
    workers = cfg.data.workers if cfg.data.workers >= 0 else (6 if device.type == "cuda" else 0)
    sampler = IterationBatches(start, cfg.train.iterations, cfg.data.batch_size, info.rank, info.world_size)
    kwargs: Dict[str, Any] = {}
    if workers > 0:
        kwargs = {"persistent_workers": True, "prefetch_factor": max(cfg.data.prefetch, 1)}
    return torch.utils.data.DataLoader(PairDataset([c.image for c in cases], cfg), batch_sampler=sampler,
                                       num_workers=workers, pin_memory=device.type == "cuda",
                                       generator=torch.Generator().manual_seed(cfg.train.seed), **kwargs)


def _configure_determinism(cfg: PretrainConfig, device: torch.device) -> None:
    if cfg.train.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def _scalars(rec: Recorder, values: Dict[str, Any], it: int) -> None:
    scalars = {f"loss/{k}": values[k] for k in ("loss", "distill", "recon")}
    scalars.update({f"schedule/{k}": values[k] for k in ("lr", "teacher_temp", "ema")})
    scalars.update({f"diag/{k}": v for k, v in (values.get("diagnostics") or {}).items()})
    rec.scalars(it, scalars)


def _checkpoint(rec: Recorder, trainer: Trainer, run: RunFolder, cfg: PretrainConfig, reason: str) -> None:
    """Rank 0: ``last.pt`` (atomic), the backbone, the loss plot, then a ``checkpoint`` event."""
    if not rec.enabled:
        return
    path = save_checkpoint(trainer.state(), run.last_checkpoint)
    outputs.save_backbone(trainer.net.backbone.state_dict(), run.backbone, cfg.to_dict(), trainer.iteration)
    if trainer.history["iteration"]:
        rec.plot(lambda target: outputs.plot_losses(trainer.history, target))
    rec.flush()
    rec.emit("checkpoint", iteration=trainer.iteration, total=cfg.train.iterations, path=str(path), reason=reason)


def resolve_config(run: Union[Path, RunFolder], cfg: Optional[PretrainConfig], resume: bool,
                   max_iters: Optional[int], allow_changed: bool = False) -> PretrainConfig:
    """The run's configuration.

    Resuming: the checkpoint's settings; ``cfg`` (if given) may differ from them only in
    ``train.iterations`` unless ``allow_changed`` (the rule of :func:`voxmmsd.jobs.config.resume_config`).
    A new run: ``cfg``. ``max_iters`` sets the length either way.
    """
    folder = run if isinstance(run, RunFolder) else RunFolder(run)
    if resume:
        changes = cfg.to_dict() if cfg is not None else {}
        cfg = resume_config(PretrainConfig, folder.saved_settings("pre-training"), changes,
                            allow_changed=allow_changed)
    elif cfg is None:
        raise ConfigError("No configuration given.")
    if max_iters is not None:
        cfg = replace(cfg, train=replace(cfg.train, iterations=int(max_iters)))
    check(cfg)
    return cfg


def run_pretraining(cfg: Optional[PretrainConfig], run: Path, resume: bool = False, device: str = "auto",
                    max_iters: Optional[int] = None, show_progress: bool = True, allow_changed: bool = False,
                    stop: Optional[StopFlag] = None) -> int:
    """Pre-train into ``run``; returns 0 when done or stopped cleanly (signal or ``RUN/stop.requested``)."""
    folder = RunFolder(run)
    if resume:
        folder.require_checkpoint("pre-training")
    else:
        folder.require_new()
    cfg = resolve_config(folder, cfg, resume, max_iters, allow_changed)
    if not cfg.data.root:
        raise ConfigError("No data set given: use --data DIR.")
    info = dist_utils.init_distributed()
    try:
        with training_session(folder, "pre-training run", info, stop) as flag:
            dev = select_device(device, info.local_rank)
            _configure_determinism(cfg, dev)
            ckpt = load_checkpoint(folder.last_checkpoint) if resume else None
            if info.is_main:
                write_text(folder.config, to_yaml(cfg))
            rec = Recorder(folder, STAGE, info.is_main, cfg.train.tensorboard,
                           resume_from=int(ckpt["iteration"]) if ckpt is not None else None)
            try:
                return _train(cfg, folder, ckpt, dev, info, rec, flag, show_progress)
            except Exception as exc:
                rec.emit("error", message=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                raise
            finally:
                rec.close()
    finally:
        dist_utils.cleanup(info)


def _train(cfg: PretrainConfig, run: RunFolder, ckpt: Optional[Dict[str, Any]], dev: torch.device,
           info: dist_utils.DistInfo, rec: Recorder, flag: StopFlag, show_progress: bool) -> int:
    root = Path(cfg.data.root or "")  # run_pretraining refused a run without data.root
    cache_dir = Path(cfg.data.cache_dir) if cfg.data.cache_dir else default_cache_dir(root)
    cases = prepare_cases(root, cache_dir, cfg.preprocessing, rec.events, build=info.is_main,
                          show_progress=show_progress and info.is_main) if info.is_main else []
    dist_utils.barrier(info)
    if not info.is_main:
        cases = prepare_cases(root, cache_dir, cfg.preprocessing, build=False)
    check_crop_fits(cases, cfg.data.patch_size)
    trainer = Trainer(cfg, dev, info)
    if ckpt is not None:
        trainer.load(ckpt)
    start = trainer.iteration
    log.info("pre-training %d case(s), iterations %d..%d, batch %d x %d process(es), device %s, precision %s",
             len(cases), start, cfg.train.iterations, cfg.data.batch_size, info.world_size, dev,
             trainer.amp_dtype or "fp32")
    rec.emit("start", iteration=start, total=cfg.train.iterations, resumed=ckpt is not None, cases=len(cases),
             world_size=info.world_size, device=str(dev), dropped_events=rec.dropped_events)
    bar = None
    if show_progress and info.is_main:
        from tqdm import tqdm

        bar = tqdm(total=cfg.train.iterations, initial=start, desc="pre-training", unit="it", dynamic_ncols=True)
    t0, done0 = time.time(), start
    monitor = CollapseMonitor.for_run(cfg)
    stopped = False
    for batch in _loader(cases, cfg, start, dev, info):
        values = trainer.step(batch)
        it = trainer.iteration
        if not all(math.isfinite(values[k]) for k in ("loss", "distill", "recon")):
            raise VoxMMSDError(f"The loss became {values['loss']} at iteration {it}. Lower the learning rate "
                               f"(--set train.lr=...) or use --set train.precision=fp32, and resume from the last "
                               f"checkpoint.")
        if bar is not None:
            bar.update(1)
            pairs = (bar.format_dict.get("rate") or 0.0) * cfg.data.batch_size * info.world_size
            bar.set_postfix(loss=f"{values['loss']:.4f}", pairs_per_s=f"{pairs:.2f}")
        if it % cfg.train.log_every == 0 or it == cfg.train.iterations:
            rate = (it - done0) / max(time.time() - t0, 1e-9)
            rec.emit(iteration=it, total=cfg.train.iterations,
                     losses={k: values[k] for k in ("loss", "distill", "recon")}, lr=values["lr"],
                     teacher_temp=values["teacher_temp"], ema=values["ema"],
                     eta_s=(cfg.train.iterations - it) / rate if rate > 0 else None,
                     pairs_per_s=rate * cfg.data.batch_size * info.world_size,
                     diagnostics=values["diagnostics"])
            _scalars(rec, values, it)
            collapse = monitor.update(it, values["diagnostics"])
            if collapse:
                log.warning("%s", collapse)
                rec.emit("warning", iteration=it, kind="collapse", message=collapse)
        if stop_agreed(flag, info, dev):
            stopped = True
            break
        if it % cfg.train.checkpoint_every == 0 and it < cfg.train.iterations:
            _checkpoint(rec, trainer, run, cfg, "periodic")
    if bar is not None:
        bar.close()
    _checkpoint(rec, trainer, run, cfg, "stopped" if stopped else "done")
    dist_utils.barrier(info)
    if stopped:
        log.warning("stopped at iteration %d of %d; continue with --resume %s", trainer.iteration, cfg.train.iterations,
                    run.root)
        rec.emit("stopped", iteration=trainer.iteration, total=cfg.train.iterations,
                 message=f"stopped by {flag.signal_name}; resume with --resume {run.root}")
        return 0
    rec.emit("done", iteration=trainer.iteration, total=cfg.train.iterations,
             outputs={"backbone": str(run.backbone), "checkpoint": str(run.last_checkpoint),
                      "loss_plot": str(run.loss_plot)})
    log.info("done: %s", run.backbone)
    return 0
