"""Training pairs for a torch DataLoader: a map-style data set indexed by global sample number.

:class:`IterationBatches` yields, for each iteration from ``start`` on, the global
sample numbers of this process's share of the batch; resuming is starting from the
checkpoint's iteration, and every process (DDP rank) gets a disjoint share.
"""

from __future__ import annotations

from typing import Dict, Iterator, List, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from voxmmsd.pretrain.config import PretrainConfig
from voxmmsd.pretrain.sampler import case_for_index, sample_pair, sample_rng


class PairDataset(Dataset):
    """Sample ``index`` -> a training pair (dict of tensors) from the case :func:`case_for_index` picks."""

    def __init__(self, images: Sequence[np.ndarray], cfg: PretrainConfig) -> None:
        self.images = list(images)
        self.cfg = cfg

    def __len__(self) -> int:  # samples are indexed by global number; the length is nominal
        return len(self.images)

    def sample(self, index: int) -> Dict[str, np.ndarray]:
        cfg, m = self.cfg, self.cfg.method
        image = self.images[case_for_index(index, len(self.images), cfg.train.seed)]
        return sample_pair(image, sample_rng(cfg.train.seed, index), cfg.data.patch_size, m.block_size, m.mask_ratio,
                           m.n_pairs, cfg.augment)

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        return {k: torch.from_numpy(v) for k, v in self.sample(index).items()}


class IterationBatches(Sampler):
    """Batches of global sample numbers for iterations ``start .. total-1`` of process ``rank`` of ``world``."""

    def __init__(self, start: int, total: int, batch_size: int, rank: int = 0, world: int = 1) -> None:
        self.start, self.total, self.batch_size, self.rank, self.world = start, total, batch_size, rank, world

    def __len__(self) -> int:
        return max(self.total - self.start, 0)

    def __iter__(self) -> Iterator[List[int]]:
        per_iter = self.batch_size * self.world
        for it in range(self.start, self.total):
            first = it * per_iter + self.rank * self.batch_size
            yield list(range(first, first + self.batch_size))
