"""The fine-tuning configuration: typed, frozen, saved as ``RUN/config.yaml`` and in every checkpoint.

Sources, later ones winning: the defaults below, a YAML file (``--config``), then
``--set section.key=value`` overrides (the value is read as YAML, so
``--set network.channels=[8,16,32,64,128]`` and ``--set data.val=0.25`` work).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

from voxmmsd.errors import ConfigError
from voxmmsd.nets.config import UNetConfig
from voxmmsd.preprocessing import PreprocessConfig

#: a case selection: None (the rest), a number of cases, a fraction, or a list of case ids
Selection = Union[None, int, float, Tuple[str, ...]]


@dataclass(frozen=True)
class DataConfig:
    root: Optional[str] = None  # the labelled data set folder (--data)
    labels: str = "auto"  # label convention of the files: auto | brats2023 | legacy
    train: Selection = None  # None = every case not used for validation
    val: Selection = 0.2
    split_seed: int = 0
    cache_dir: Optional[str] = None  # None = RUN/cache
    workers: int = 0  # DataLoader worker processes
    patch_size: Tuple[int, int, int] = (96, 96, 96)  # (z, y, x) voxels, multiples of 16
    batch_size: int = 2
    foreground_ratio: float = 0.33  # share of patches centred on a tumour voxel
    augment: bool = True
    sequence_dropout: float = 0.0  # probability that a patch loses 1..C-1 whole sequences


@dataclass(frozen=True)
class TrainConfig:
    iterations: int = 20000
    epoch_iters: int = 250  # iterations per epoch; validation and checkpoint after each
    optimizer: str = "adamw"  # adamw | sgd
    lr: float = 1e-3
    final_lr: float = 1e-5
    weight_decay: float = 1e-5
    momentum: float = 0.99  # SGD only
    warmup_iters: int = 200  # linear warm-up, applied when starting from pre-trained weights
    grad_clip: float = 12.0  # 0 = off
    precision: str = "auto"  # auto (bf16 on GPUs, fp32 on CPUs) | bf16 | fp16 | fp32
    seed: int = 0
    log_every: int = 10


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

    def __post_init__(self) -> None:
        check(self)

    def to_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.to_dict() if hasattr(value, "to_dict") else _plain(value)
        return out

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "FinetuneConfig":
        d = dict(d or {})
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"Unknown configuration section(s) {sorted(unknown)}; "
                              f"known: {[f.name for f in fields(cls)]}.")
        kwargs: Dict[str, Any] = {}
        for name, typ in (("data", DataConfig), ("train", TrainConfig), ("validation", ValidationConfig),
                          ("init", InitConfig), ("package", PackageConfig)):
            kwargs[name] = _section(typ, d.get(name) or {}, name)
        try:
            kwargs["network"] = UNetConfig.from_dict(_known(d.get("network") or {}, UNetConfig, "network"))
            kwargs["preprocessing"] = PreprocessConfig.from_dict(
                _known(d.get("preprocessing") or {}, PreprocessConfig, "preprocessing"))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"Invalid network or preprocessing setting: {exc}.") from None
        return cls(**kwargs)

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _plain(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _known(d: Dict[str, Any], typ: Any, section: str) -> Dict[str, Any]:
    if not isinstance(d, dict):
        raise ConfigError(f"Configuration section '{section}' must be a mapping, not {d!r}.")
    names = [f.name for f in fields(typ)]
    unknown = set(d) - set(names)
    if unknown:
        raise ConfigError(f"Unknown setting(s) {sorted(section + '.' + k for k in unknown)}; "
                          f"known in '{section}': {names}.")
    return d


def _coerce(value: Any, default: Any, key: str) -> Any:
    """``value`` converted to the type of the field's ``default`` (selections keep their own type)."""
    try:
        if isinstance(default, bool):
            if isinstance(value, bool):
                return value
            raise ValueError("expected true or false")
        if isinstance(default, int):
            if isinstance(value, bool) or float(value) != int(value):
                raise ValueError("expected a whole number")
            return int(value)
        if isinstance(default, float):
            return float(value)
        if isinstance(default, str):
            return str(value)
        if isinstance(default, tuple):
            return tuple(type(default[0])(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"Setting {key}={value!r} is invalid ({exc}).") from None
    return value


def _selection(value: Any, key: str) -> Selection:
    if value is None or isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value)
    raise ConfigError(f"Setting {key}={value!r} is invalid: give a number of cases, a fraction or a list of case ids.")


def _section(typ: Any, d: Dict[str, Any], name: str) -> Any:
    d = _known(d, typ, name)
    base = typ()
    values = {}
    for f in fields(typ):
        if f.name not in d:
            continue
        key = f"{name}.{f.name}"
        if typ is DataConfig and f.name in ("train", "val"):
            values[f.name] = _selection(d[f.name], key)
        elif getattr(base, f.name) is None:
            values[f.name] = None if d[f.name] is None else str(d[f.name])
        else:
            values[f.name] = _coerce(d[f.name], getattr(base, f.name), key)
    return replace(base, **values)


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
    if t.lr <= 0 or t.final_lr < 0:
        raise ConfigError("train.lr must be positive and train.final_lr not negative.")
    if t.precision not in ("auto", "bf16", "fp16", "fp32"):
        raise ConfigError(f"train.precision={t.precision!r}: use auto, bf16, fp16 or fp32.")
    if not 0.0 <= cfg.validation.overlap < 1.0 or cfg.validation.blend not in ("gaussian", "constant"):
        raise ConfigError("validation.overlap must be in [0, 1) and validation.blend gaussian or constant.")
    if cfg.network.num_classes < 4:
        raise ConfigError("network.num_classes must be at least 4 (background, NETC, SNFH, ET; 5 adds RC).")


def parse_overrides(items: Iterable[str]) -> Dict[str, Any]:
    """``["train.lr=0.01", "network.channels=[8,16,32,64,128]"]`` -> a nested dict (values read as YAML)."""
    import yaml

    out: Dict[str, Any] = {}
    for item in items or ():
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: write section.key=value (e.g. --set train.lr=0.0005).")
        key, raw = item.split("=", 1)
        parts = [p for p in key.strip().split(".") if p]
        if len(parts) != 2:
            raise ConfigError(f"--set {item!r}: the key must be section.key (e.g. data.patch_size).")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML ({exc}).") from None
        out.setdefault(parts[0], {})[parts[1]] = value
    return out


def merge(base: Dict[str, Any], extra: Dict[str, Any]) -> Dict[str, Any]:
    """Nested copy of ``base`` updated by ``extra`` (one level of sections)."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k].update(v)
        else:
            out[k] = v
    return out


def read_yaml(path: Path) -> Dict[str, Any]:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Configuration file not found: {path}.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"Configuration file {path} is not valid YAML: {exc}.") from None
    if not isinstance(data, dict):
        raise ConfigError(f"Configuration file {path} must hold a mapping of sections (data:, train:, ...).")
    return data


def load_config(path: Optional[Path] = None, overrides: Iterable[str] = (),
                base: Optional[Dict[str, Any]] = None) -> FinetuneConfig:
    """Defaults (or ``base``), then the YAML file ``path``, then ``--set`` overrides."""
    d = dict(base or {})
    if path is not None:
        d = merge(d, read_yaml(path))
    d = merge(d, parse_overrides(list(overrides)))
    return FinetuneConfig.from_dict(d)


def with_settings(cfg: FinetuneConfig, **sections: Dict[str, Any]) -> FinetuneConfig:
    """A copy of ``cfg`` with some settings changed, e.g. ``with_settings(cfg, train={"iterations": 50})``."""
    return FinetuneConfig.from_dict(merge(cfg.to_dict(), sections))


def selection_text(sel: Selection) -> str:
    if isinstance(sel, tuple):
        return ",".join(sel)
    return "rest" if sel is None else str(sel)


__all__: List[str] = ["FinetuneConfig", "DataConfig", "TrainConfig", "ValidationConfig", "InitConfig",
                      "PackageConfig", "load_config", "parse_overrides", "with_settings", "read_yaml"]
