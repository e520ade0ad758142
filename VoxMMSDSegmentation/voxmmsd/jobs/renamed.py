"""Settings renamed in a later version: old run folders, checkpoints and YAML files still load.

A configuration class lists its renamed settings in ``RENAMED`` (a class variable of
:class:`Renamed` entries). :func:`upgrade` rewrites a mapping of settings from the old
names to the new ones (converting the value where the meaning changed, e.g. a warm-up
count into a fraction of the run) and warns once per old name with
:class:`RenamedSettingWarning`, a :class:`FutureWarning`, so that users see it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple


class RenamedSettingWarning(FutureWarning):
    """A configuration uses a setting's old name; it was read under the new one."""


@dataclass(frozen=True)
class Renamed:
    old: str  # dotted path, e.g. "train.final_lr"
    new: str  # dotted path, e.g. "train.lr_end"
    #: (old value, the whole mapping it came from) -> the new value; None = the value unchanged
    convert: Optional[Callable[[Any, Mapping[str, Any]], Any]] = None
    note: str = ""  # how the value was converted, for the warning


def get_path(data: Mapping[str, Any], path: str) -> Tuple[bool, Any]:
    """``(found, value)`` of the dotted ``path`` in a nested mapping."""
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _copy(data: Mapping[str, Any]) -> Dict[str, Any]:
    return {k: (_copy(v) if isinstance(v, Mapping) else v) for k, v in data.items()}


def _pop(data: Dict[str, Any], path: str) -> Any:
    *parents, last = path.split(".")
    node = data
    for part in parents:
        node = node[part]
    return node.pop(last)


def _put(data: Dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def upgrade(data: Optional[Mapping[str, Any]], renamed: Sequence[Renamed], where: str = "") -> Dict[str, Any]:
    """A copy of ``data`` with every old name in ``renamed`` replaced by its new name (with a warning).

    Where a mapping holds both names, the new one wins. An old setting whose name is now a
    section's (pre-training's ``data`` -> ``data.root``) is renamed only where its value is not
    already a mapping of settings. ``where`` (a file, "the checkpoint") names the source in the
    warning; settings only renamed (no value converted) of one source share one warning that lists
    them.
    """
    out = _copy(data or {})
    done = []
    for r in renamed:
        found, value = get_path(out, r.old)
        if not found or isinstance(value, Mapping) and r.new.startswith(r.old + "."):
            continue
        new_value = r.convert(value, out) if r.convert is not None else value
        _pop(out, r.old)
        has_new, _ = get_path(out, r.new)
        if not has_new:
            _put(out, r.new, new_value)
        done.append((r, new_value, has_new))
    source = f" in {where}" if where else ""
    plain = [d for d in done if d[0].convert is None]
    for r, new_value, has_new in [d for d in done if d[0].convert is not None] + (plain if len(plain) == 1 else []):
        how = f" ({r.note})" if r.note else ""
        warnings.warn(f"The setting {r.old}{source} is now called {r.new}: read as {r.new}={new_value!r}{how}"
                      f"{'; the value of ' + r.new + ' given as well wins' if has_new else ''}. Write {r.new} from "
                      f"now on; the old name will stop working in a later version.",
                      RenamedSettingWarning, stacklevel=3)
    if len(plain) > 1:
        listed = ", ".join(f"{r.old} -> {r.new}" + (" (the new name, given as well, wins)" if has_new else "")
                           for r, _, has_new in plain)
        warnings.warn(f"{len(plain)} settings{source} have new names and were read under them: {listed}. Write the "
                      f"new names from now on; the old ones will stop working in a later version.",
                      RenamedSettingWarning, stacklevel=3)
    return out
