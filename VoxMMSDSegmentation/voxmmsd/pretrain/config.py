"""The typed pre-training configuration: the paper's defaults, overridable by YAML and ``--set``.

Saved as ``RUN/config.yaml`` and inside every checkpoint. Sections, with fine-tuning's names
where a setting means the same: ``data`` (root, cache_dir, patch_size, batch_size, workers),
``train`` (iterations, lr, lr_end, lr_warmup, weight_decay, precision, seed, log_every, ...),
``network`` and ``preprocessing``; pre-training's own: ``method`` (SiaBloMM, ORMS, the heads,
loss and teacher) and ``augment``. Loading, ``--set`` parsing and the resume rule are those of
:mod:`voxmmsd.jobs.config`, shared with fine-tuning (``--set train.lr=0.01``). The flat names
of earlier versions (``lr``, ``crop_size``, ``data``, ...) still load, with a
:class:`~voxmmsd.jobs.renamed.RenamedSettingWarning` (``PretrainConfig.RENAMED``).
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
from voxmmsd.jobs.renamed import Renamed
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
class PretrainDataConfig:
    """The unlabelled cases and how they are fed (the names of fine-tuning's ``data`` section)."""

    root: Optional[str] = None  # data set folder (--data; labels, if any, are ignored)
    cache_dir: Optional[str] = None  # preprocessing cache folder (--cache; None = per-user cache)
    patch_size: Tuple[int, int, int] = (96, 96, 96)  # (z, y, x) voxels of a view, multiples of block_size and 16
    batch_size: int = 2  # cases per process and iteration
    workers: int = -1  # DataLoader workers; -1 = 6 on CUDA, 0 on CPU
    prefetch: int = 4


@dataclass(frozen=True)
class PretrainTrainConfig:
    """Optimisation and bookkeeping (the names of fine-tuning's ``train`` section)."""

    iterations: int = 60000
    optimizer: str = "sgd"  # sgd | adamw
    lr: float = 1e-3
    lr_end: float = 1e-4
    lr_warmup: float = 0.05  # fraction of the iterations
    momentum: float = 0.9  # SGD only
    weight_decay: float = 1e-5
    weight_decay_end: float = 1e-4
    grad_clip: float = 0.0  # 0 = off
    precision: str = "auto"  # auto (bf16/fp16 on GPU, fp32 on CPU) | fp32 | bf16 | fp16
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 500  # iterations between checkpoints (fine-tuning checkpoints every train.epoch_iters)
    channels_last: bool = False
    deterministic: bool = False
    tensorboard: bool = True


@dataclass(frozen=True)
class MethodConfig:
    """Vox-MMSD's own settings: SiaBloMM views, ORMS pairs, the heads, the loss and the teacher."""

    # views and SiaBloMM
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


#: where each setting of the flat layout (run folders, checkpoints and YAML files made before 2026-12-07) lives now;
#: ``data`` comes first: it became a section, and the other data settings move into it
_MOVED = ((("data", "data.root"), ("cache", "data.cache_dir"), ("crop_size", "data.patch_size"))
          + tuple((k, f"data.{k}") for k in ("batch_size", "workers", "prefetch"))
          + tuple((f.name, f"train.{f.name}") for f in dataclasses.fields(PretrainTrainConfig))
          + tuple((f.name, f"method.{f.name}") for f in dataclasses.fields(MethodConfig)))


@dataclass(frozen=True)
class PretrainConfig:
    """Everything that defines a pre-training run (paper defaults)."""

    data: PretrainDataConfig = field(default_factory=PretrainDataConfig)
    train: PretrainTrainConfig = field(default_factory=PretrainTrainConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    network: UNetConfig = field(default_factory=UNetConfig)
    preprocessing: PreprocessConfig = field(default_factory=PreprocessConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    #: the setting a resume may change without --allow-changed-settings (--max-iters)
    RUN_LENGTH: ClassVar[str] = "train.iterations"
    #: the flat settings of earlier versions and their place in the sections
    RENAMED: ClassVar[Tuple[Renamed, ...]] = tuple(Renamed(old, new) for old, new in _MOVED)

    def to_dict(self) -> Dict[str, Any]:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "PretrainConfig":
        return build(cls, d or {})


def check(cfg: PretrainConfig) -> None:
    """Raise ConfigError for settings that cannot work together."""
    d, t, m = cfg.data, cfg.train, cfg.method
    if len(d.patch_size) != 3 or any(c <= 0 for c in d.patch_size):
        raise ConfigError(f"data.patch_size must be three positive sizes (z, y, x), got {list(d.patch_size)}.")
    for c in d.patch_size:
        if c % 16:
            raise ConfigError(f"data.patch_size {list(d.patch_size)}: every size must be a multiple of 16 (four "
                              f"2x poolings). Try --set data.patch_size=96,96,96 or 64,64,64.")
        if c % m.block_size:
            raise ConfigError(f"data.patch_size {list(d.patch_size)} is not a multiple of method.block_size "
                              f"{m.block_size}.")
    if not 0.0 <= m.mask_ratio < 1.0:
        raise ConfigError(f"method.mask_ratio must be in [0, 1), got {m.mask_ratio}.")
    if t.optimizer not in ("sgd", "adamw"):
        raise ConfigError(f"train.optimizer must be 'sgd' or 'adamw', got {t.optimizer!r}.")
    if not 0.0 <= t.lr_warmup <= 1.0:
        raise ConfigError(f"train.lr_warmup={t.lr_warmup}: a fraction of the iterations between 0 and 1 (e.g. 0.05).")
    if m.recon_voxels not in ("masked", "all"):
        raise ConfigError(f"method.recon_voxels must be 'masked' or 'all', got {m.recon_voxels!r}.")
    if m.head not in ("dino", "paper"):
        raise ConfigError(f"method.head must be 'dino' or 'paper', got {m.head!r}.")
    if m.teacher_bn not in ("batch", "running"):
        raise ConfigError(f"method.teacher_bn must be 'batch' or 'running', got {m.teacher_bn!r}.")
    if t.precision not in ("auto", "fp32", "bf16", "fp16"):
        raise ConfigError(f"train.precision must be auto, fp32, bf16 or fp16, got {t.precision!r}.")
    positive = {"train.iterations": t.iterations, "data.batch_size": d.batch_size, "method.n_pairs": m.n_pairs,
                "method.out_dim": m.out_dim, "method.block_size": m.block_size,
                "train.checkpoint_every": t.checkpoint_every, "train.log_every": t.log_every}
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


def with_settings(cfg: PretrainConfig, **sections: Dict[str, Any]) -> PretrainConfig:
    """A copy of ``cfg`` with some settings changed, e.g. ``with_settings(cfg, train={"iterations": 50})``."""
    return PretrainConfig.from_dict(merge(cfg.to_dict(), sections))


__all__ = ["AugmentConfig", "PretrainConfig", "PretrainDataConfig", "PretrainTrainConfig", "MethodConfig", "check",
           "load_config", "to_yaml", "with_settings", "parse_overrides", "merge", "read_yaml"]
