"""The pre-training data: find the cases, preprocess them into the cache, check they fit the crops."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import List, Optional, Sequence

from voxmmsd.data.cache import CachedCase, build_cache, is_cache_folder, load_cache, open_prepared, settings_key
from voxmmsd.errors import InputError
from voxmmsd.io.discovery import find_dataset
from voxmmsd.jobs.events import EventWriter
from voxmmsd.preprocessing import PreprocessConfig

log = logging.getLogger(__name__)


def default_cache_dir(data: Path) -> Path:
    """``$VOXMMSD_CACHE`` or ``~/.cache/voxmmsd``, then ``preprocessed/<hash of the data folder>``."""
    base = Path(os.environ.get("VOXMMSD_CACHE") or Path.home() / ".cache" / "voxmmsd")
    key = hashlib.sha256(str(Path(data).resolve()).encode()).hexdigest()[:12]
    return base / "preprocessed" / key


def cache_folder(cache_dir: Path, preprocessing: PreprocessConfig) -> Path:
    """The settings-specific folder of the cache (labels are not cached for pre-training)."""
    return Path(cache_dir) / settings_key(preprocessing, False)


def prepare_cases(data: Path, cache_dir: Path, preprocessing: PreprocessConfig,
                  events: Optional[EventWriter] = None, build: bool = True,
                  show_progress: bool = True) -> List[CachedCase]:
    """Preprocessed cases of ``data`` (labels ignored). ``build=False`` (DDP ranks > 0) only opens the cache.

    ``data`` may also be a built cache folder (images already preprocessed elsewhere).
    """
    if is_cache_folder(Path(data)):
        return open_prepared(Path(data), preprocessing)
    if not build:
        return load_cache(cache_folder(cache_dir, preprocessing))
    dataset = find_dataset(Path(data), require_all=True, require_labels=False)
    return build_cache(dataset, Path(cache_dir), preprocessing, label_convention=None, events=events,
                       show_progress=show_progress)


def check_crop_fits(cases: Sequence[CachedCase], crop: Sequence[int]) -> None:
    """Raise InputError naming the cases smaller than ``crop`` (z, y, x) after cropping to the brain."""
    small = [c for c in cases if any(k > s for k, s in zip(crop, c.image.shape[1:]))]
    if not small:
        return
    shapes = ", ".join(f"{c.case_id} {tuple(int(s) for s in c.image.shape[1:])}" for c in small[:5])
    smallest = [min(int(c.image.shape[1 + a]) for c in cases) for a in range(3)]
    fit = [max(16, s // 16 * 16) for s in smallest]
    raise InputError(
        f"The crop size {tuple(crop)} (z, y, x) is larger than {len(small)} case(s) after cropping to the "
        f"brain: {shapes}. Use a smaller crop, e.g. --set data.patch_size={','.join(str(v) for v in fit)} "
        f"(multiples of 16 and of method.block_size), or remove those cases."
    )
