"""How much memory a whole-crop pass needs, and how much the machine has (no PyTorch)."""

from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np

#: Peak bytes per voxel per first-level channel of one U-Net pass with folded BatchNorm and
#: in-place activations, measured on the CPU (docs/inference.md): fp32 ~ 20, bf16 ~ 12.
BYTES_PER_VOXEL_CHANNEL = {"float32": 20.0, "bfloat16": 12.0, "float16": 12.0}


def available_memory_bytes() -> Optional[int]:
    """Physical memory available now (Linux ``MemAvailable``; else free pages), or None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def whole_pass_bytes(shape: Sequence[int], first_channels: int, precision: str = "float32") -> int:
    """Estimated peak bytes of one pass over a padded crop of ``shape`` (z, y, x)."""
    per = BYTES_PER_VOXEL_CHANNEL.get(precision, BYTES_PER_VOXEL_CHANNEL["float32"])
    return int(np.prod(shape) * first_channels * per)


def max_whole_voxels(first_channels: int, precision: str, budget_bytes: Optional[int]) -> Optional[int]:
    """The largest crop (voxels) a whole pass may take within ``budget_bytes`` (None: no limit known)."""
    if budget_bytes is None:
        return None
    per = BYTES_PER_VOXEL_CHANNEL.get(precision, BYTES_PER_VOXEL_CHANNEL["float32"]) * first_channels
    return int(budget_bytes / per)
