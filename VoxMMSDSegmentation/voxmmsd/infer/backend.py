"""Transitional: the backends moved to :mod:`voxmmsd.infer.backends` (removed once every caller imports from there)."""

from __future__ import annotations

from voxmmsd.infer.backends.base import Backend, DeviceOutOfMemoryError, gpu_for_rank, torch_available
from voxmmsd.infer.backends.select import BACKENDS, choose_backend, create_backend

__all__ = ["BACKENDS", "Backend", "DeviceOutOfMemoryError", "choose_backend", "create_backend", "gpu_for_rank",
           "torch_available"]
