"""The fine-tuning configuration: typed, frozen, saved as ``RUN/config.yaml`` and in every checkpoint.

Sources, later ones winning: the defaults below, a YAML file (``--config``), then
``--set section.key=value`` overrides (the value is read as YAML, so
``--set network.channels=[8,16,32,64,128]`` and ``--set data.val=0.25`` work). Loading,
parsing and the resume rule are those of :mod:`voxmmsd.jobs.config`, shared with pre-training.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Dict, Iterable, List, Mapping, Optional, Tuple, Union

from voxmmsd.errors import ConfigError
from voxmmsd.jobs.config import build, load, merge, parse_overrides, read_yaml
from voxmmsd.jobs.config import to_dict as config_to_dict
from voxmmsd.jobs.config import to_yaml as config_to_yaml
from voxmmsd.jobs.renamed import Renamed, get_path
from voxmmsd.nets.config import UNetConfig
from voxmmsd.preprocessing import PreprocessConfig

#: a case selection: None (the rest), a number of cases, a fraction, or a list of case ids
Selection = Union[None, int, float, Tuple[str, ...]]


@dataclass(frozen=True)
class DataConfig:
    root: Optional[str] = None  # the labelled data set folder (--data)
    labels: str = "auto"  # label convention of the files: auto | brats2023 | legacy
    train: Selection = field(default=None, metadata={"parse": lambda v, k: _selection(v, k)})  # None = the rest
    val: Selection = field(default=0.2, metadata={"parse": lambda v, k: _selection(v, k)})
    split_seed: int = 0
    cache_dir: Optional[str] = None  # None = RUN/cache
    workers: int = 0  # DataLoader worker processes
    patch_size: Tuple[int, int, int] = (96, 96, 96)  # (z, y, x) voxels, multiples of 16
    batch_size: int = 2
    foreground_ratio: float = 0.33  # share of patches centred on a tumour voxel
    augment: bool = True
    sequence_dropout: float = 0.0  # probability that a patch loses 1..C-1 whole sequences
    clinical_sim: float = 0.0  # probability of a simulated clinical acquisition (thick slices, noise, bias)
    channel_jitter: float = 0.0  # per-sequence probability of its own gamma, contrast and brightness change


@dataclass(frozen=True)
class TrainConfig:
    iterations: int = 20000
    epoch_iters: int = 250  # iterations per epoch; validation and checkpoint after each
    optimizer: str = "adamw"  # adamw | sgd
    lr: float = 1e-3
    lr_end: float = 1e-5  # cosine schedule from lr to lr_end
    lr_warmup: float = 0.01  # fraction of the iterations: linear warm-up, applied when starting from --init weights
    weight_decay: float = 1e-5
    momentum: float = 0.99  # SGD only
    grad_clip: float = 12.0  # 0 = off
    precision: str = "auto"  # auto (bf16 on GPUs, fp32 on CPUs) | bf16 | fp16 | fp32
    seed: int = 0
    log_every: int = 10
    loss: str = "dice_ce"  # dice_ce (softmax classes) | regions (sigmoid WT, TC, ET: BraTS region training)
    channels_last: bool = True  # channels-last-3d memory layout (faster convolutions on CPUs and GPUs)


@dataclass(frozen=True)
class ValidationConfig:
    overlap: float = 0.5
    blend: str = "gaussian"  # gaussian | constant
    max_cases: int = 0  # 0 = every validation case
    at_start: bool = False  # also validate the network before training (the untrained / initial baseline)


@dataclass(frozen=True)
class InitConfig:
    path: Optional[str] = None  # pre-training run, weights file or PyMIC checkpoint
    keep_head: bool = False  # keep the checkpoint's output layer instead of a fresh one


@dataclass(frozen=True)
class PackageConfig:
    model_id: str = "voxmmsd-finetuned"
    version: str = "1.0.0"
    name: Optional[str] = None
    description: str = ""
    onnx: bool = True
    license: str = "research use only"
    citation: str = ""


@dataclass(frozen=True)
class FinetuneConfig:
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    init: InitConfig = field(default_factory=InitConfig)
    package: PackageConfig = field(default_factory=PackageConfig)
    network: UNetConfig = field(default_factory=UNetConfig)
    preprocessing: PreprocessConfig = field(default_factory=PreprocessConfig)

    #: the setting a resume may change without --allow-changed-settings (--max-iters)
    RUN_LENGTH: ClassVar[str] = "train.iterations"
    #: settings of earlier versions (run folders and checkpoints made before 2026-12) and their new names
    RENAMED: ClassVar[Tuple[Renamed, ...]] = (
        Renamed("train.final_lr", "train.lr_end"),
        Renamed("train.warmup_iters", "train.lr_warmup", lambda count, d: _warmup_fraction(count, d),
                "a count of iterations, now a fraction of train.iterations"),
    )

    def __post_init__(self) -> None:
        check(self)

    def to_dict(self) -> Dict[str, Any]:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "FinetuneConfig":
        return build(cls, d or {})

    def to_yaml(self) -> str:
        return config_to_yaml(self)


def _warmup_fraction(count: Any, settings: Mapping[str, Any]) -> float:
    """An old warm-up count as a fraction of the run's iterations (those of the same settings, else the default)."""
    found, iterations = get_path(settings, "train.iterations")
    try:
        total = int(iterations) if found and iterations is not None else TrainConfig.iterations
        return min(1.0, max(0.0, float(count) / total)) if total > 0 else 0.0
    except (TypeError, ValueError):
        raise ConfigError(f"Setting train.warmup_iters={count!r} is invalid: expected a whole number.") from None


def _selection(value: Any, key: str) -> Selection:
    if value is None or isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value)
    raise ConfigError(f"Setting {key}={value!r} is invalid: give a number of cases, a fraction or a list of case ids.")


def check(cfg: FinetuneConfig) -> None:
    """Raise :class:`ConfigError` for values that cannot work."""
    d, t = cfg.data, cfg.train
    if d.labels not in ("auto", "brats2023", "legacy"):
        raise ConfigError(f"data.labels={d.labels!r}: use auto, brats2023 or legacy.")
    if len(d.patch_size) != 3 or any(p <= 0 or p % cfg.network.divisor for p in d.patch_size):
        raise ConfigError(f"data.patch_size={list(d.patch_size)}: three sizes, each a positive multiple of "
                          f"{cfg.network.divisor} (e.g. [96,96,96], or [64,64,64] on a CPU).")
    if not 0.0 <= d.foreground_ratio <= 1.0 or not 0.0 <= d.sequence_dropout <= 1.0:
        raise ConfigError("data.foreground_ratio and data.sequence_dropout are probabilities between 0 and 1.")
    if d.batch_size < 1 or d.workers < 0:
        raise ConfigError("data.batch_size must be at least 1 and data.workers at least 0.")
    if t.iterations < 1 or t.epoch_iters < 1:
        raise ConfigError("train.iterations and train.epoch_iters must be at least 1 (e.g. --max-iters 100).")
    if t.optimizer not in ("adamw", "sgd"):
        raise ConfigError(f"train.optimizer={t.optimizer!r}: use adamw or sgd.")
    if t.lr <= 0 or t.lr_end < 0:
        raise ConfigError("train.lr must be positive and train.lr_end not negative.")
    if not 0.0 <= t.lr_warmup <= 1.0:
        raise ConfigError(f"train.lr_warmup={t.lr_warmup}: a fraction of the iterations between 0 and 1 "
                          f"(e.g. 0.01).")
    if t.loss not in ("dice_ce", "regions"):
        raise ConfigError(f"train.loss={t.loss!r}: use dice_ce (classes) or regions (WT, TC, ET).")
    if not 0.0 <= d.clinical_sim <= 1.0 or not 0.0 <= d.channel_jitter <= 1.0:
        raise ConfigError("data.clinical_sim and data.channel_jitter are probabilities between 0 and 1.")
    if t.precision not in ("auto", "bf16", "fp16", "fp32"):
        raise ConfigError(f"train.precision={t.precision!r}: use auto, bf16, fp16 or fp32.")
    if not 0.0 <= cfg.validation.overlap < 1.0 or cfg.validation.blend not in ("gaussian", "constant"):
        raise ConfigError("validation.overlap must be in [0, 1) and validation.blend gaussian or constant.")
    if cfg.network.num_classes < 4:
        raise ConfigError("network.num_classes must be at least 4 (background, NETC, SNFH, ET; 5 adds RC).")


def load_config(path: Optional[Path] = None, overrides: Iterable[str] = (),
                base: Optional[Dict[str, Any]] = None) -> FinetuneConfig:
    """Defaults (or ``base``), then the YAML file ``path``, then ``--set`` overrides."""
    return load(FinetuneConfig, path, overrides, base)


def with_settings(cfg: FinetuneConfig, **sections: Dict[str, Any]) -> FinetuneConfig:
    """A copy of ``cfg`` with some settings changed, e.g. ``with_settings(cfg, train={"iterations": 50})``."""
    return FinetuneConfig.from_dict(merge(cfg.to_dict(), sections))


def selection_text(sel: Selection) -> str:
    if isinstance(sel, tuple):
        return ",".join(sel)
    return "rest" if sel is None else str(sel)


__all__: List[str] = ["FinetuneConfig", "DataConfig", "TrainConfig", "ValidationConfig", "InitConfig",
                      "PackageConfig", "load_config", "parse_overrides", "with_settings", "read_yaml", "merge",
                      "selection_text"]
