"""Backend selection. A backend turns (N, C, D, H, W) float32 arrays into (N, K, D, H, W) logits.

No PyTorch import here: the ONNX Runtime backend must work where PyTorch is absent.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Protocol

import numpy as np

from voxmmsd.errors import ConfigError, ModelError

if TYPE_CHECKING:  # pragma: no cover
    from voxmmsd.models.package import ModelPackage

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnx")


class DeviceOutOfMemoryError(RuntimeError):
    """The accelerator ran out of memory for this input (the caller may retry smaller, or on the CPU)."""


class Backend(Protocol):
    name: str
    device: str

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Logits (N, K, D, H, W) float32 of ``x`` (N, C, D, H, W) float32."""

    def labels(self, x: np.ndarray) -> np.ndarray:
        """Class indices (N, D, H, W) uint8 of ``x``: the argmax of :meth:`forward`, where the backend can
        take it on its device."""

    def on_cpu(self) -> "Backend":
        """The same model on the CPU (fallback after running out of device memory)."""

    def describe(self) -> Dict[str, Any]:
        """Name, device, precision and library versions (for reports)."""


def gpu_for_rank(device_count: int, environ: Optional[Mapping[str, str]] = None) -> int:
    """The GPU index this process should use: ``LOCAL_RANK`` (set by torchrun) modulo the number of
    GPUs, so that ranks of a sharded batch spread over the machine's GPUs; 0 outside torchrun."""
    env = os.environ if environ is None else environ
    try:
        rank = int(env.get("LOCAL_RANK", "0") or 0)
    except ValueError:
        rank = 0
    return rank % device_count if device_count > 0 else 0


def torch_available() -> bool:
    """Whether PyTorch can be imported (without importing it)."""
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def choose_backend(requested: str, package: "ModelPackage") -> str:
    """``auto`` -> PyTorch when installed, else ONNX Runtime (the package must hold model.onnx)."""
    requested = (requested or "auto").lower()
    if requested not in BACKENDS:
        raise ConfigError(f"Unknown backend {requested!r}; use one of {', '.join(BACKENDS)}.")
    if requested == "auto":
        requested = "torch" if torch_available() else "onnx"
    if requested == "onnx" and package.onnx_path is None:
        if torch_available():
            log.warning("model %s has no ONNX export; using the PyTorch backend", package.id)
            return "torch"
        raise ModelError(f"Model {package.summary()} ({package.folder}) has no model.onnx and PyTorch is not "
                         f"installed. Install PyTorch, or export the model with 'voxmmsd export'.")
    if requested == "torch" and not torch_available():
        raise ConfigError("The PyTorch backend was requested but PyTorch is not installed. Use --backend onnx, "
                          "or install PyTorch (pip install torch).")
    return requested


def create_backend(package: "ModelPackage", backend: str = "auto", device: str = "auto",
                   precision: str = "auto", channels_last: bool = True) -> Backend:
    """Build the backend once (weights loaded, session created)."""
    kind = choose_backend(backend, package)
    if kind == "torch":
        from voxmmsd.infer.torch_backend import TorchBackend

        return TorchBackend(package, device, precision, channels_last)
    from voxmmsd.infer.onnx_backend import OnnxBackend

    return OnnxBackend(package, device)
