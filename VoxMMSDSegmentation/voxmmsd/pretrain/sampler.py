"""One training pair from one cached case (numpy; runs in the data loader).

Everything random about sample ``index`` comes from a generator seeded by
``(seed, index)``, so a sample is the same whichever process, worker or resumed run
draws it. Only the two crops are read from the memory-mapped case; masks stay block
grids; augmentations are parameters. The training device builds the views from these
(:mod:`voxmmsd.pretrain.step`).
"""

from __future__ import annotations

from typing import Dict, Sequence

import numpy as np

from voxmmsd.pretrain.augment import draw_params
from voxmmsd.pretrain.config import AugmentConfig
from voxmmsd.pretrain.masking import draw_block_mask
from voxmmsd.pretrain.orms import sample_pairs
from voxmmsd.pretrain.views import read_crop, sample_view_pair


def sample_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of global sample ``index`` of a run seeded with ``seed``."""
    return np.random.default_rng([int(seed), int(index), 0x5EED])


def case_for_index(index: int, n_cases: int, seed: int) -> int:
    """Which case global sample ``index`` uses: every case once per epoch, in a seeded order per epoch."""
    epoch, pos = divmod(int(index), n_cases)
    return int(np.random.default_rng([int(seed), epoch, 0xCA5E]).permutation(n_cases)[pos])


def sample_pair(image: np.ndarray, rng: np.random.Generator, crop: Sequence[int], block: int, ratio: float,
                n_pairs: int, augment: AugmentConfig) -> Dict[str, np.ndarray]:
    """A training pair from a case ``image`` (C, Z, Y, X) uint8.

    Returns ``views`` uint8 (2, C, D, H, W), ``grids`` bool (2, C, D/b, H/b, W/b) (True =
    visible), ``params`` float32 (2, 6, C), ``seeds`` int64 (2,), ``coords`` int64
    (2, n_pairs, 3), ``sequences`` int64 (2, n_pairs), ``valid`` bool (n_pairs,), ``starts``
    int64 (2, 3).
    """
    channels = image.shape[0]
    starts = sample_view_pair(rng, image.shape[1:], crop)
    views = np.stack([read_crop(image, s, crop) for s in starts])
    grids = np.stack([draw_block_mask(rng, channels, crop, block, ratio) for _ in starts])
    pairs = sample_pairs(rng, views, grids, starts, crop, block, n_pairs)
    params = np.stack([draw_params(rng, augment, channels) for _ in starts])
    seeds = rng.integers(0, 2 ** 62, size=2, dtype=np.int64)
    return {"views": views, "grids": grids, "params": params, "seeds": seeds, "coords": pairs.coords,
            "sequences": pairs.sequences, "valid": pairs.valid, "starts": np.asarray(starts, dtype=np.int64)}
