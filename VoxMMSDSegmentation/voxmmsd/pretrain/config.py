"""The typed pre-training configuration: the paper's defaults, overridable by YAML and ``--set``.

Saved as ``RUN/config.yaml`` and inside every checkpoint. Nested sections:
``network`` (:class:`UNetConfig`), ``preprocessing`` (:class:`PreprocessConfig`) and
``augment`` (:class:`AugmentConfig`); everything else is a top-level setting. Loading,
``--set`` parsing and the resume rule are those of :mod:`voxmmsd.jobs.config`, shared
with fine-tuning (``--set network.channels=...``, ``--set lr=0.01``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Dict, Iterable, Optional, Tuple

from voxmmsd.errors import ConfigError
from voxmmsd.jobs.config import build, load, merge, parse_overrides, read_yaml
from voxmmsd.jobs.config import to_dict as config_to_dict
from voxmmsd.jobs.config import to_yaml as config_to_yaml
from voxmmsd.nets.config import UNetConfig
from voxmmsd.preprocessing import PreprocessConfig


@dataclass(frozen=True)
class AugmentConfig:
    """Intensity augmentations of the masked views (the authors' settings, applied with probability p).

    ``*_prob`` is the chance that an augmentation fires for a view; ``*_channel_prob``
    the chance that a firing augmentation touches a given sequence.
    """

    enabled: bool = True
    noise_prob: float = 1.0
    noise_std: float = 0.05
    blur_prob: float = 0.8
    blur_channel_prob: float = 0.5
    blur_sigma: Tuple[float, float] = (0.1, 2.0)
    mult_prob: float = 0.85
    mult_channel_prob: float = 0.5
    mult_range: Tuple[float, float] = (0.75, 1.25)
    add_prob: float = 0.5
    add_channel_prob: float = 0.8
    add_range: Tuple[float, float] = (0.0, 0.4)
    contrast_prob: float = 0.5
    contrast_range: Tuple[float, float] = (0.75, 1.25)
    gamma_prob: float = 0.8
    gamma_range: Tuple[float, float] = (0.7, 1.5)


@dataclass(frozen=True)
class PretrainConfig:
    """Everything that defines a pre-training run (paper defaults)."""

    data: str = ""  # data set folder (labels, if any, are ignored)
    cache: str = ""  # preprocessing cache folder ("" = per-user cache)
    network: UNetConfig = field(default_factory=UNetConfig)
    preprocessing: PreprocessConfig = field(default_factory=PreprocessConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    # views and SiaBloMM
    crop_size: Tuple[int, int, int] = (96, 96, 96)  # (z, y, x) voxels, multiples of block_size and 16
    block_size: int = 16
    mask_ratio: float = 0.875
    # ORMS
    n_pairs: int = 1024
    # heads and loss
    out_dim: int = 512  # K: prototypes (head=dino) or output size (head=paper)
    head: str = "dino"  # dino (MLP-GELU, bottleneck, L2, cosine to prototypes) | paper (Linear-BN-ReLU, L2)
    head_hidden: int = 0  # 0 = the pyramid's width (480 for the paper's network)
    head_bottleneck: int = 256  # head=dino: width of the L2-normalised embedding
    head_bn: bool = True  # head=dino: BatchNorm after the hidden layers (normalises over the step's voxels)
    head_logit_std: float = 0.1  # head=dino: each voxel's outputs standardised to this SD over K (0 = raw cosines)
    teacher_bn: str = "batch"  # teacher BatchNorm: batch statistics | running (the student's, copied)
    freeze_prototypes: float = 0.1  # head=dino: fraction of the iterations with the prototypes held fixed
    student_temp: float = 0.1
    teacher_temp: float = 0.04
    teacher_temp_end: float = 0.04  # DINO's default; the paper's 0.07 leaves the teacher too flat (pretraining.md)
    teacher_temp_warmup: float = 1.0 / 15.0  # fraction of the iterations
    center_momentum: float = 0.9
    ema_momentum: float = 0.996
    ema_momentum_end: float = 1.0
    distill_weight: float = 1.0
    recon_weight: float = 1.0
    recon_voxels: str = "masked"  # "masked" (masked sequence-voxels inside the brain) or "all"
    # optimisation
    optimizer: str = "sgd"  # sgd | adamw
    lr: float = 1e-3
    lr_end: float = 1e-4
    lr_warmup: float = 0.05  # fraction of the iterations
    momentum: float = 0.9
    weight_decay: float = 1e-5
    weight_decay_end: float = 1e-4
    grad_clip: float = 0.0  # 0 = off
    batch_size: int = 2  # cases per process and iteration
    iterations: int = 60000
    seed: int = 0
    # speed and bookkeeping
    precision: str = "auto"  # auto (bf16/fp16 on GPU, fp32 on CPU) | fp32 | bf16 | fp16
    channels_last: bool = False
    workers: int = -1  # DataLoader workers; -1 = 6 on CUDA, 0 on CPU
    prefetch: int = 4
    deterministic: bool = False
    checkpoint_every: int = 500
    log_every: int = 10
    tensorboard: bool = True

    #: the setting a resume may change without --allow-changed-settings (--max-iters)
    RUN_LENGTH: ClassVar[str] = "iterations"

    def to_dict(self) -> Dict[str, Any]:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "PretrainConfig":
        return build(cls, d or {})


def check(cfg: PretrainConfig) -> None:
    """Raise ConfigError for settings that cannot work together."""
    if len(cfg.crop_size) != 3 or any(c <= 0 for c in cfg.crop_size):
        raise ConfigError(f"crop_size must be three positive sizes (z, y, x), got {list(cfg.crop_size)}.")
    for c in cfg.crop_size:
        if c % 16:
            raise ConfigError(f"crop_size {list(cfg.crop_size)}: every size must be a multiple of 16 (four "
                              f"2x poolings). Try --set crop_size=96,96,96 or 64,64,64.")
        if c % cfg.block_size:
            raise ConfigError(f"crop_size {list(cfg.crop_size)} is not a multiple of block_size {cfg.block_size}.")
    if not 0.0 <= cfg.mask_ratio < 1.0:
        raise ConfigError(f"mask_ratio must be in [0, 1), got {cfg.mask_ratio}.")
    if cfg.optimizer not in ("sgd", "adamw"):
        raise ConfigError(f"optimizer must be 'sgd' or 'adamw', got {cfg.optimizer!r}.")
    if cfg.recon_voxels not in ("masked", "all"):
        raise ConfigError(f"recon_voxels must be 'masked' or 'all', got {cfg.recon_voxels!r}.")
    if cfg.head not in ("dino", "paper"):
        raise ConfigError(f"head must be 'dino' or 'paper', got {cfg.head!r}.")
    if cfg.teacher_bn not in ("batch", "running"):
        raise ConfigError(f"teacher_bn must be 'batch' or 'running', got {cfg.teacher_bn!r}.")
    if cfg.precision not in ("auto", "fp32", "bf16", "fp16"):
        raise ConfigError(f"precision must be auto, fp32, bf16 or fp16, got {cfg.precision!r}.")
    positive = {"iterations": cfg.iterations, "batch_size": cfg.batch_size, "n_pairs": cfg.n_pairs,
                "out_dim": cfg.out_dim, "block_size": cfg.block_size, "checkpoint_every": cfg.checkpoint_every,
                "log_every": cfg.log_every}
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{key} must be positive, got {value}.")
    if cfg.network.in_channels != 4:
        raise ConfigError("network.in_channels must be 4 (T1n, T1c, T2w, T2-FLAIR).")


def load_config(path: Optional[Path] = None, overrides: Iterable[str] = (),
                base: Optional[Dict[str, Any]] = None) -> PretrainConfig:
    """Defaults <- ``base`` <- YAML file <- ``--set`` overrides; validated."""
    cfg = load(PretrainConfig, path, overrides, base)
    check(cfg)
    return cfg


def to_yaml(cfg: PretrainConfig) -> str:
    return config_to_yaml(cfg)


def with_changes(cfg: PretrainConfig, **changes: Any) -> PretrainConfig:
    return dataclasses.replace(cfg, **changes)


__all__ = ["AugmentConfig", "PretrainConfig", "check", "load_config", "to_yaml", "with_changes", "parse_overrides",
           "merge", "read_yaml"]
