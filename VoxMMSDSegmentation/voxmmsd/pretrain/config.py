"""The typed pre-training configuration: the paper's defaults, overridable by YAML and ``--set``.

Saved as ``RUN/config.yaml`` and inside every checkpoint. Nested sections:
``network`` (:class:`UNetConfig`), ``preprocessing`` (:class:`PreprocessConfig`) and
``augment`` (:class:`AugmentConfig`); everything else is flat.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, Optional, Tuple

from voxmmsd.errors import ConfigError
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
    out_dim: int = 512
    head_hidden: int = 0  # 0 = the pyramid's width (480 for the paper's network)
    student_temp: float = 0.1
    teacher_temp: float = 0.04
    teacher_temp_end: float = 0.07
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

    def to_dict(self) -> Dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "PretrainConfig":
        return _build(cls, d or {}, "")


SECTIONS = {"network": UNetConfig, "preprocessing": PreprocessConfig, "augment": AugmentConfig}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _coerce(value: Any, default: Any, key: str) -> Any:
    """Convert ``value`` to the type of ``default`` (the field's default), or raise ConfigError."""
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                if value.lower() in ("true", "yes", "1", "on"):
                    return True
                if value.lower() in ("false", "no", "0", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if isinstance(default, tuple):
            if isinstance(value, str):
                value = [v for v in value.replace("[", "").replace("]", "").split(",") if v.strip()]
            if not isinstance(value, (list, tuple)):
                value = [value]
            kind = type(default[0]) if default else float
            return tuple(kind(v) for v in value)
        if isinstance(default, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if isinstance(default, float):
            return float(value)
        if isinstance(default, str):
            return "" if value is None else str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"Setting {key!r}: cannot use {value!r} (expected {type(default).__name__}, "
                          f"like {default!r}).") from None
    return value


def _build(cls: Any, d: Dict[str, Any], prefix: str) -> Any:
    if not isinstance(d, dict):
        raise ConfigError(f"Setting {prefix.rstrip('.') or 'config'!r} must be a mapping, got {d!r}.")
    if cls is UNetConfig or cls is PreprocessConfig:
        defaults = cls().to_dict()
        unknown = set(d) - set(defaults)
        if unknown:
            raise ConfigError(f"Unknown setting(s) {sorted(prefix + k for k in unknown)}; "
                              f"known: {sorted(prefix + k for k in defaults)}.")
        merged = dict(defaults)
        obj = cls()
        for k, v in d.items():
            default = getattr(obj, k)
            if default is None and isinstance(v, str):  # e.g. spacing "2,2,2"
                default = (0.0, 0.0, 0.0) if v.strip().lower() not in ("", "none", "null") else None
                v = None if default is None else v
            merged[k] = _coerce(v, default, prefix + k) if default is not None and v is not None else v
        try:
            return cls.from_dict(merged)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"Invalid {prefix.rstrip('.')} settings: {exc}.") from None
    default_obj = cls()
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ConfigError(f"Unknown setting(s) {sorted(prefix + k for k in unknown)}; "
                          f"known: {sorted(prefix + k for k in names)}.")
    kwargs = {}
    for name, value in d.items():
        default = getattr(default_obj, name)
        if name in SECTIONS and cls is PretrainConfig:
            kwargs[name] = _build(SECTIONS[name], value, f"{name}.")
        else:
            kwargs[name] = _coerce(value, default, prefix + name)
    return cls(**kwargs)


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


def parse_overrides(items: Iterable[str]) -> Dict[str, Any]:
    """``["lr=0.01", "network.channels=4,8,16,32,64"]`` -> nested dict (values parsed as YAML)."""
    import yaml

    out: Dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: use key=value, e.g. --set lr=0.01.")
        key, text = item.split("=", 1)
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def merge(base: Dict[str, Any], extra: Dict[str, Any]) -> Dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def read_yaml(path: Path) -> Dict[str, Any]:
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"Cannot read config file {path}: {exc.strerror}.") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"Config file {path} is not valid YAML: {exc}.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"Config file {path} must hold a mapping of settings.")
    return data


def load_config(path: Optional[Path] = None, overrides: Iterable[str] = (),
                base: Optional[Dict[str, Any]] = None) -> PretrainConfig:
    """Defaults <- ``base`` <- YAML file <- ``--set`` overrides; validated."""
    d: Dict[str, Any] = dict(base or {})
    if path is not None:
        d = merge(d, read_yaml(path))
    d = merge(d, parse_overrides(overrides))
    cfg = PretrainConfig.from_dict(d)
    check(cfg)
    return cfg


def to_yaml(cfg: PretrainConfig) -> str:
    import yaml

    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)


def with_changes(cfg: PretrainConfig, **changes: Any) -> PretrainConfig:
    return dataclasses.replace(cfg, **changes)
