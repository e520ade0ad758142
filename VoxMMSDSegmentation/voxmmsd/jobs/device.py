"""Choose the device and precision: CUDA when present (bf16 where supported), else the CPU."""

from __future__ import annotations

import logging
from typing import Optional

import torch

from voxmmsd.errors import ConfigError

log = logging.getLogger(__name__)


def select_device(choice: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` -> CUDA if available else CPU; ``cuda``/``gpu`` fails clearly if there is none."""
    choice = (choice or "auto").lower()
    if choice in ("auto", ""):
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    if choice in ("cuda", "gpu"):
        if not torch.cuda.is_available():
            raise ConfigError("A GPU was requested (--device cuda) but PyTorch sees none. Use --device cpu or auto.")
        return torch.device(f"cuda:{local_rank}")
    if choice == "cpu":
        return torch.device("cpu")
    if choice.startswith("cuda:"):
        return torch.device(choice)
    raise ConfigError(f"Unknown device {choice!r}; use auto, cuda or cpu.")


def autocast_dtype(device: torch.device, requested: str = "auto") -> Optional[torch.dtype]:
    """Mixed-precision dtype: bf16 on GPUs that support it, else fp16; None (fp32) on the CPU unless asked."""
    requested = (requested or "auto").lower()
    if requested in ("fp32", "float32", "none", "off"):
        return None
    if requested in ("bf16", "bfloat16"):
        return torch.bfloat16
    if requested in ("fp16", "float16"):
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return None
