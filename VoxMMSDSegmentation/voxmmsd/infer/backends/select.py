"""Backend selection: ``auto`` -> PyTorch when installed, else ONNX Runtime; build the chosen backend once.

The backends are imported only here, lazily, so that the ONNX Runtime path never imports PyTorch.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from voxmmsd.errors import ConfigError, ModelError
from voxmmsd.infer.backends.base import Backend, torch_available

if TYPE_CHECKING:  # pragma: no cover
    from voxmmsd.models.package import ModelPackage

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnx")


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
        from voxmmsd.infer.backends.torch_backend import TorchBackend

        return TorchBackend(package, device, precision, channels_last)
    from voxmmsd.infer.backends.onnx_backend import OnnxBackend

    return OnnxBackend(package, device)
