"""What every backend is: the :class:`Backend` protocol, the out-of-memory signal, the GPU of a torchrun rank,
and whether PyTorch is there. Imports no backend (and no PyTorch): the backends import this module, never the
other way round.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from typing import Any, Dict, Mapping, Optional, Protocol

import numpy as np

log = logging.getLogger(__name__)


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
