"""One typed configuration loader for every command that saves its settings with a run.

A configuration is a tree of frozen dataclasses (sections nest to any depth). Sources,
later ones winning: the dataclass defaults, a ``base`` mapping (e.g. a run's saved
settings), a YAML file (``--config``), then ``--set PATH=VALUE`` overrides, where PATH
is the dotted path of a field in the tree (``train.lr``, ``network.channels``; a
top-level field is its bare name, e.g. pre-training's ``lr``). Values are read as YAML,
then converted to the field's annotated type by one set of rules:

- ``bool``: true/false (YAML also reads yes/no/on/off); 1/0; anything else is refused;
- ``int``: whole numbers only (``1.5`` is refused); ``float``: any number;
- tuples: a YAML list or ``a,b,c``, with the declared length and element type;
- ``Optional[...]``: ``null``/``none``/empty -> None;
- a field with ``metadata={"parse": fn}`` is converted by ``fn(value, key)``.

Unknown keys raise :class:`ConfigError` naming the known ones (and the full path when a
bare key names a field inside a section). The same rule governs resuming:
:func:`resume_config` refuses settings that differ from the run's own unless allowed.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Type, TypeVar, Union

from voxmmsd.errors import ConfigError
from voxmmsd.jobs.renamed import upgrade

C = TypeVar("C")

_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")
_NONE = ("", "none", "null", "~")


def is_section(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _hints(cls: Type[Any]) -> Dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # pragma: no cover - an annotation that cannot be resolved: fall back to defaults
        return {}


def _field_default(f: "dataclasses.Field[Any]") -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def _bad(key: str, value: Any, expected: str) -> ConfigError:
    return ConfigError(f"Setting {key}={value!r} is invalid: expected {expected}.")


def coerce(value: Any, hint: Any, key: str, default: Any = None) -> Any:
    """``value`` converted to the annotated type ``hint`` of setting ``key`` (raise ConfigError)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is Union:
        optional = type(None) in args
        rest = [a for a in args if a is not type(None)]
        if optional and (value is None or isinstance(value, str) and value.strip().lower() in _NONE):
            return None
        if len(rest) == 1:
            return coerce(value, rest[0], key, default)
        for a in rest:  # several types: the first that accepts the value
            try:
                return coerce(value, a, key, default)
            except ConfigError:
                continue
        raise _bad(key, value, " or ".join(getattr(a, "__name__", str(a)) for a in rest))
    if hint is Any or hint is None:
        return value
    if is_section(hint):
        return build(hint, value, key)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise _bad(key, value, "true or false")
    if hint is int:
        if isinstance(value, bool):
            raise _bad(key, value, "a whole number")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise _bad(key, value, "a whole number") from None
        if not number.is_integer():
            raise _bad(key, value, "a whole number")
        return int(number)
    if hint is float:
        if isinstance(value, bool):
            raise _bad(key, value, "a number")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise _bad(key, value, "a number") from None
    if hint is str:
        if value is None:
            return ""
        if isinstance(value, (dict, list, tuple)):
            raise _bad(key, value, "a text")
        return str(value)
    if origin in (tuple, list) or hint in (tuple, list):
        if isinstance(value, str):
            value = [v.strip() for v in value.strip().strip("[]()").split(",") if v.strip()]
        elif not isinstance(value, (list, tuple)):
            value = [value]
        if len(args) == 2 and args[1] is Ellipsis:
            items = [coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
        elif args:
            if len(value) != len(args):
                raise _bad(key, value, f"{len(args)} values")
            items = [coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args))]
        else:
            items = list(value)
        return tuple(items) if (origin or hint) is tuple else items
    return value


def leaf_paths(cls: Type[Any], prefix: str = "") -> List[str]:
    """Every setting's dotted path in the tree of ``cls``."""
    out: List[str] = []
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints.get(f.name)
        if tp is not None and is_section(tp):
            out += leaf_paths(tp, f"{prefix}{f.name}.")
        else:
            out.append(prefix + f.name)
    return out


def _unknown(cls: Type[Any], keys: Iterable[str], prefix: str, root: Optional[Type[Any]]) -> ConfigError:
    names = [f.name for f in dataclasses.fields(cls)]
    hints = []
    paths = leaf_paths(root) if root is not None else []
    for k in sorted(keys):
        matches = [p for p in paths if p.rsplit(".", 1)[-1] == k and p != prefix + k]
        if matches:
            hints.append(f"{prefix}{k}: did you mean {' or '.join(matches)}?")
    where = f" in '{prefix.rstrip('.')}'" if prefix else ""
    text = (f"Unknown setting(s) {sorted(prefix + k for k in keys)}; known{where}: {names}. "
            f"Write --set section.key=value with a key from that list.")
    return ConfigError(text + (" " + " ".join(hints) if hints else ""))


def upgraded(cls: Type[Any], data: Optional[Mapping[str, Any]], where: str = "") -> Dict[str, Any]:
    """``data`` with the old names of renamed settings of ``cls`` (its ``RENAMED`` list) replaced, with a warning."""
    return upgrade(data, getattr(cls, "RENAMED", ()), where)


def build(cls: Type[C], data: Any, section: str = "", _root: Optional[Type[Any]] = None) -> C:
    """An instance of the dataclass ``cls`` from a (partial) mapping; missing fields keep their defaults.

    At the top level, settings under an old name (``cls.RENAMED``) are read under the new one.
    """
    root = _root or cls
    prefix = f"{section}." if section else ""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"Setting '{section or 'config'}' must be a mapping of settings, not {data!r}.")
    if _root is None and not section:
        data = upgraded(cls, data)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - set(fields)
    if unknown:
        raise _unknown(cls, unknown, prefix, root)
    hints = _hints(cls)
    kwargs: Dict[str, Any] = {}
    for name, value in data.items():
        f = fields[name]
        key = prefix + name
        parse: Optional[Callable[[Any, str], Any]] = f.metadata.get("parse") if f.metadata else None
        tp = hints.get(name)
        if parse is not None:
            kwargs[name] = parse(value, key)
        elif tp is not None and is_section(tp):
            kwargs[name] = build(tp, value, key, root)
        elif tp is not None:
            kwargs[name] = coerce(value, tp, key, _field_default(f))
        else:
            kwargs[name] = value
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"Invalid {section or 'configuration'} settings: {exc}.") from None


def to_dict(cfg: Any) -> Any:
    """A configuration as plain YAML-able values (sections as mappings, tuples as lists)."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, dict):
        return {k: to_dict(v) for k, v in cfg.items()}
    return cfg


def to_yaml(cfg: Any) -> str:
    import yaml

    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def parse_overrides(items: Iterable[str]) -> Dict[str, Any]:
    """``["train.lr=0.01", "network.channels=[8,16,32,64,128]"]`` -> a nested mapping (values read as YAML)."""
    import yaml

    out: Dict[str, Any] = {}
    for item in items or ():
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: write section.key=value (e.g. --set train.lr=0.0005).")
        key, raw = item.split("=", 1)
        parts = [p.strip() for p in key.strip().split(".")]
        if not parts or any(not p for p in parts):
            raise ConfigError(f"--set {item!r}: the key must be a dotted path such as section.key.")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        node = out
        for part in parts[:-1]:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"--set {item!r} conflicts with another --set of {part}.")
            node = nxt
        node[parts[-1]] = value
    return out


def merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> Dict[str, Any]:
    """A deep copy of ``base`` updated by ``extra`` at any depth."""
    out: Dict[str, Any] = {k: (merge(v, {}) if isinstance(v, Mapping) else v) for k, v in base.items()}
    for k, v in extra.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = merge(out[k], v)
        else:
            out[k] = merge(v, {}) if isinstance(v, Mapping) else v
    return out


def read_yaml(path: Path) -> Dict[str, Any]:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Configuration file not found: {path}.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"Cannot read configuration file {path}: {exc.strerror}.") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"Configuration file {path} is not valid YAML: {exc}.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"Configuration file {path} must hold a mapping of settings.")
    return data


def load(cls: Type[C], path: Optional[Path] = None, overrides: Iterable[str] = (),
         base: Optional[Mapping[str, Any]] = None) -> C:
    """Defaults <- ``base`` <- YAML file ``path`` <- ``--set`` overrides, as a ``cls``.

    Each source is upgraded from old setting names on its own, so that a new name given later wins.
    """
    d: Dict[str, Any] = upgraded(cls, base)
    if path is not None:
        d = merge(d, upgraded(cls, read_yaml(path), str(path)))
    d = merge(d, upgraded(cls, parse_overrides(list(overrides or ())), "--set"))
    return build(cls, d)


def differences(old: Any, new: Any, prefix: str = "") -> List[Tuple[str, Any, Any]]:
    """``(path, old, new)`` of every setting that differs between two configurations (or mappings)."""
    a = to_dict(old) if not isinstance(old, Mapping) else old
    b = to_dict(new) if not isinstance(new, Mapping) else new
    out: List[Tuple[str, Any, Any]] = []
    for k in list(a) + [k for k in b if k not in a]:
        va, vb = a.get(k), b.get(k)
        if isinstance(va, Mapping) and isinstance(vb, Mapping):
            out += differences(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append((prefix + k, va, vb))
    return out


#: settings a resume can never change, not even with ``--allow-changed-settings``: the checkpoint's tensors have
#: the network's shapes (a change ended in a long PyTorch traceback while loading the weights)
FIXED_ON_RESUME = ("network.",)


def resume_config(cls: Type[C], saved: Mapping[str, Any], changes: Mapping[str, Any], *,
                  allow_changed: bool = False, free: Optional[Sequence[str]] = None,
                  fixed: Sequence[str] = FIXED_ON_RESUME) -> C:
    """The configuration a resumed run uses: its ``saved`` settings with ``changes`` applied.

    The rule is the same for every command, and this is its only place: a resume keeps the
    run's settings. A change other than the paths in ``free`` (by default the run's length,
    ``cls.RUN_LENGTH``) is refused with the list of changed settings unless ``allow_changed``
    (``--allow-changed-settings``); a change of a setting under a prefix of ``fixed`` (the
    network) is refused even then. Saved settings under old names are read under the new ones.
    """
    if free is None:
        free = (getattr(cls, "RUN_LENGTH", "iterations"),)
    old = build(cls, upgraded(cls, saved, "the run's saved settings"))
    new = build(cls, merge(to_dict(old), upgraded(cls, changes)))
    frozen = [d for d in differences(old, new) if d[0].startswith(tuple(fixed))]
    if frozen:
        listed = "; ".join(f"{p}: {a!r} -> {b!r}" for p, a, b in frozen)
        raise ConfigError(f"--resume cannot change the network ({listed}): the checkpoint holds weights of the "
                          f"run's own network. Leave out those options, or start a new run with --out (and "
                          f"--init to start from this run's weights where they fit).")
    changed = [d for d in differences(old, new) if d[0] not in free]
    if changed and not allow_changed:
        listed = "; ".join(f"{p}: {a!r} -> {b!r}" for p, a, b in changed)
        raise ConfigError(f"--resume keeps the run's own settings, but these would change: {listed}. Leave out "
                          f"those options, add --allow-changed-settings to change them anyway (the continued run "
                          f"then differs from an uninterrupted one), or start a new run.")
    return new
