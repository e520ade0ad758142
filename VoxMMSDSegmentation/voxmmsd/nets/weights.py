"""Save and load network weights safely.

Our format: safetensors, with a small JSON document of metadata stored in the file's
header under the key ``voxmmsd``. Legacy PyTorch checkpoints (``.pt``/``.pth``, such as
the authors' PyMIC files with ``model_state_dict``) are read only with
``torch.load(weights_only=True)``, which refuses pickled code.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch
from torch import nn

from voxmmsd.errors import ModelError
from voxmmsd.io.atomic import atomic_path

log = logging.getLogger(__name__)

META_KEY = "voxmmsd"
_PREFIXES = ("module.", "_orig_mod.", "net.", "model.", "backbone.", "student.")


def save_weights(state: Mapping[str, torch.Tensor], path: Path, metadata: Optional[Dict[str, Any]] = None,
                 dtype: Optional[torch.dtype] = None) -> Path:
    """Write ``state`` as safetensors (atomically), with ``metadata`` as JSON in the header.

    ``dtype`` (e.g. ``torch.float16``) converts floating-point tensors to save space.
    """
    from safetensors.torch import save_file

    tensors = {}
    for k, v in state.items():
        t = v.detach().cpu()
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        tensors[k] = t.contiguous()
    meta = {META_KEY: json.dumps(metadata or {}, default=str)}
    with atomic_path(Path(path)) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return Path(path)


def restamp_weights(path: Path, **changes: Any) -> None:
    """Rewrite the ``voxmmsd`` record in the header of the safetensors file ``path`` (e.g. a new id and version
    for an installed copy), the tensors unchanged; atomically."""
    from safetensors.torch import load_file, save_file

    record = read_metadata(path)
    record.update(changes)
    tensors = load_file(str(path))
    with atomic_path(Path(path)) as tmp:
        save_file(tensors, str(tmp), metadata={META_KEY: json.dumps(record, default=str)})


def read_metadata(path: Path) -> Dict[str, Any]:
    """The JSON metadata of a safetensors file written by :func:`save_weights` ({} if none)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:  # safetensors raises several types for a damaged header
        raise ModelError(f"Cannot read weights {path}: {exc}. The file is damaged or not safetensors; "
                         f"download or export it again.") from None
    return json.loads(meta.get(META_KEY, "{}"))


def load_weights(path: Path) -> Tuple[Dict[str, torch.Tensor], Dict[str, Any]]:
    """Read a state dict (and metadata) from safetensors or, safely, from a legacy ``.pt``."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"Weights file not found: {path}.")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        meta = read_metadata(path)
        try:
            state = load_file(str(path))
        except Exception as exc:
            raise ModelError(f"Cannot read weights {path}: {exc}. The file is damaged; "
                             f"download or export it again.") from None
        return state, meta
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(
            f"Cannot load {path} safely: {str(exc).splitlines()[0]}. Only plain tensor checkpoints are "
            f"accepted (torch.load weights_only=True); convert it with 'voxmmsd export' on a trusted machine."
        ) from None
    return extract_state_dict(obj, path), {}


def extract_state_dict(obj: Any, source: Path) -> Dict[str, torch.Tensor]:
    """The tensors of a checkpoint dict: ``model_state_dict``, ``state_dict``, ``model``, or itself."""
    if isinstance(obj, dict):
        for key in ("model_state_dict", "state_dict", "model", "student", "network_weights"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelError(f"{source} holds no state dict of tensors.")
    return {strip_prefixes(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def strip_prefixes(key: str) -> str:
    """``module.encoder...`` (DDP) or ``backbone.encoder...`` -> ``encoder...``."""
    while True:
        for p in _PREFIXES:
            if key.startswith(p):
                key = key[len(p):]
                break
        else:
            return key


@dataclass
class LoadReport:
    """What :func:`load_into` did: which tensors were loaded and which were skipped, and why."""

    loaded: List[str] = field(default_factory=list)
    skipped: Dict[str, str] = field(default_factory=dict)  # checkpoint key -> reason
    missing: List[str] = field(default_factory=list)  # model keys the checkpoint did not provide

    def to_dict(self) -> Dict[str, Any]:
        return {"loaded": len(self.loaded), "skipped": self.skipped, "missing": self.missing}

    def summary(self) -> str:
        return (f"loaded {len(self.loaded)} tensors, skipped {len(self.skipped)}, "
                f"{len(self.missing)} model tensors left at their initial values")


def load_into(model: nn.Module, state: Mapping[str, torch.Tensor], strict: bool = False) -> LoadReport:
    """Copy matching tensors of ``state`` into ``model``; report names and shapes that do not match.

    With ``strict`` any skipped or missing tensor raises :class:`ModelError`.
    """
    own = model.state_dict()
    report = LoadReport()
    usable = {}
    for key, tensor in state.items():
        key = strip_prefixes(key)
        if key not in own:
            report.skipped[key] = "no such parameter in this network"
        elif tuple(own[key].shape) != tuple(tensor.shape):
            report.skipped[key] = f"shape {tuple(tensor.shape)} != network's {tuple(own[key].shape)}"
        else:
            usable[key] = tensor.to(own[key].dtype)
            report.loaded.append(key)
    report.missing = [k for k in own if k not in usable]
    if strict and (report.skipped or report.missing):
        first = list(report.skipped.items())[:3] or report.missing[:3]
        raise ModelError(f"Weights do not fit the network: {report.summary()} (e.g. {first}). "
                         f"Check that the network settings match the checkpoint.")
    model.load_state_dict(usable, strict=False)
    log.info("weights: %s", report.summary())
    return report


def to_pymic_checkpoint(state: Mapping[str, torch.Tensor], iteration: int = 0) -> Dict[str, Any]:
    """A dict shaped like the authors' PyMIC checkpoints (``model_state_dict`` + ``iteration``)."""
    return {"model_state_dict": {k: v.detach().cpu() for k, v in state.items()}, "iteration": iteration}
