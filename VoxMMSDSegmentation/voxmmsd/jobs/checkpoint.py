"""Checkpoints: written atomically, read back with ``torch.load(weights_only=True)``.

A checkpoint is a dict of tensors and plain Python values (no pickled objects), so it
loads safely. Random states are stored as tensors / lists. The last good checkpoint
survives a crash while saving: the new one is written under a temporary name first.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any, Dict

import numpy as np
import torch

from voxmmsd.errors import VoxMMSDError
from voxmmsd.io.atomic import atomic_path


def save_checkpoint(state: Dict[str, Any], path: Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
    return path


def load_checkpoint(path: Path) -> Dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise VoxMMSDError(f"Checkpoint not found: {path}.")
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise VoxMMSDError(f"Checkpoint {path} is damaged or not a VoxMMSD checkpoint ({str(exc).splitlines()[0]}). "
                           f"Resume from an earlier checkpoint or start a new run.") from None


def rng_state() -> Dict[str, Any]:
    """Python, numpy and torch random states in a weights_only-loadable form."""
    np_state: Any = np.random.get_state()
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {"key": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached": float(np_state[4])},
        "python": {"version": py_state[0], "state": list(py_state[1]), "gauss": py_state[2]},
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: Dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
