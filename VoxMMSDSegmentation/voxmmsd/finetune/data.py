"""Training patches from the preprocessed-case cache.

Each patch is centred either on a random voxel of the case (its crop box clipped to
the volume) or, with probability ``foreground_ratio``, on a voxel of a randomly chosen
tumour class present in the case (foreground over-sampling, so small classes such as
ET are seen often). Then MONAI spatial and intensity augmentation and, optionally,
sequence dropout (whole sequences set to 0, which is how inference fills a missing one).

The stream opens the cache lazily in each worker process, so only case ids and the
cache folder travel to the workers, never the volumes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

log = logging.getLogger(__name__)

#: at most this many voxel positions are remembered per class and case
MAX_CLASS_POINTS = 20000


def class_points(label: np.ndarray, num_classes: int, rng: np.random.Generator) -> Dict[int, np.ndarray]:
    """Per tumour class present in ``label`` (z, y, x): up to MAX_CLASS_POINTS voxel indices (n, 3)."""
    out = {}
    for c in range(1, num_classes):
        pts = np.argwhere(label == c)
        if len(pts) > MAX_CLASS_POINTS:
            pts = pts[rng.choice(len(pts), MAX_CLASS_POINTS, replace=False)]
        if len(pts):
            out[c] = pts.astype(np.int32)
    return out


def patch_start(center: Sequence[int], shape: Sequence[int], size: Sequence[int]) -> Tuple[int, int, int]:
    """Start of a ``size`` window around ``center``, kept inside ``shape`` where the volume is larger."""
    start = []
    for c, s, p in zip(center, shape, size):
        lo = int(c) - p // 2
        if s >= p:
            lo = min(max(lo, 0), s - p)
        else:
            lo = -((p - s) // 2)  # volume smaller than the patch: centre it, pad both sides
        start.append(lo)
    return tuple(start)  # type: ignore[return-value]


def crop_patch(array: np.ndarray, start: Sequence[int], size: Sequence[int]) -> np.ndarray:
    """The ``size`` window of the last three axes of ``array`` at ``start``, zero-padded outside."""
    lead = array.shape[:-3]
    out = np.zeros(tuple(lead) + tuple(size), dtype=array.dtype)
    src, dst = [], []
    for st, p, s in zip(start, size, array.shape[-3:]):
        a, b = max(st, 0), min(st + p, s)
        src.append(slice(a, b))
        dst.append(slice(a - st, b - st))
    out[(Ellipsis,) + tuple(dst)] = array[(Ellipsis,) + tuple(src)]
    return out


def sample_center(shape: Sequence[int], points: Dict[int, np.ndarray], rng: np.random.Generator,
                  foreground_ratio: float) -> Tuple[int, int, int]:
    """A voxel of a random present tumour class with probability ``foreground_ratio``, else any voxel."""
    if points and rng.random() < foreground_ratio:
        cls = list(points)[int(rng.integers(len(points)))]
        pts = points[cls]
        return tuple(int(v) for v in pts[int(rng.integers(len(pts)))])  # type: ignore[return-value]
    return tuple(int(rng.integers(s)) for s in shape)  # type: ignore[return-value]


def drop_sequences(image: np.ndarray, rng: np.random.Generator, probability: float) -> Tuple[np.ndarray, List[int]]:
    """With ``probability``, zero 1..C-1 random whole channels of ``image`` (C, ...); return it and those dropped."""
    c = image.shape[0]
    if c < 2 or probability <= 0 or rng.random() >= probability:
        return image, []
    k = int(rng.integers(1, c))
    dropped = sorted(int(i) for i in rng.choice(c, k, replace=False))
    image = image.copy()
    image[dropped] = 0
    return image, dropped


def build_augmentation(seed: int):  # -> monai.transforms.Compose
    """MONAI dictionary transforms on ``{"image": (C,D,H,W), "label": (1,D,H,W)}``, seeded."""
    from monai import transforms as mt

    keys = ("image", "label")
    pipeline = mt.Compose([
        mt.RandAffined(keys, prob=0.2, rotate_range=(0.26, 0.26, 0.26), scale_range=(0.15, 0.15, 0.15),
                       mode=("bilinear", "nearest"), padding_mode="zeros"),
        mt.RandFlipd(keys, prob=0.5, spatial_axis=0),
        mt.RandFlipd(keys, prob=0.5, spatial_axis=1),
        mt.RandFlipd(keys, prob=0.5, spatial_axis=2),
        mt.RandGaussianNoised("image", prob=0.15, std=0.05),
        mt.RandGaussianSmoothd("image", prob=0.1, sigma_x=(0.5, 1.0), sigma_y=(0.5, 1.0), sigma_z=(0.5, 1.0)),
        mt.RandScaleIntensityd("image", factors=0.25, prob=0.15),
        mt.RandShiftIntensityd("image", offsets=0.1, prob=0.15),
        mt.RandAdjustContrastd("image", prob=0.15, gamma=(0.7, 1.5)),
    ])
    pipeline.set_random_state(seed=seed % (2 ** 32))
    return pipeline


class PatchStream(torch.utils.data.IterableDataset):
    """An endless stream of ``{"image": float32 (C,D,H,W), "label": int64 (D,H,W)}`` training patches."""

    def __init__(self, cache_folder: Path, case_ids: Sequence[str], patch_size: Sequence[int], num_classes: int,
                 foreground_ratio: float = 0.33, augment: bool = True, sequence_dropout: float = 0.0,
                 seed: int = 0) -> None:
        super().__init__()
        if not case_ids:
            raise ValueError("PatchStream needs at least one case")
        self.cache_folder = Path(cache_folder)
        self.case_ids = list(case_ids)
        self.patch_size = tuple(int(p) for p in patch_size)
        self.num_classes = num_classes
        self.foreground_ratio = foreground_ratio
        self.augment = augment
        self.sequence_dropout = sequence_dropout
        self.seed = seed

    def _worker_seed(self) -> int:
        info = torch.utils.data.get_worker_info()
        return self.seed * 1000 + (info.id if info is not None else 0)

    def __iter__(self) -> Iterator[Dict[str, torch.Tensor]]:
        from voxmmsd.data.cache import open_case

        seed = self._worker_seed()
        rng = np.random.default_rng(seed)
        aug = build_augmentation(seed) if self.augment else None
        cases = {cid: open_case(self.cache_folder, cid) for cid in self.case_ids}
        points: Dict[str, Dict[int, np.ndarray]] = {}
        while True:
            cid = self.case_ids[int(rng.integers(len(self.case_ids)))]
            yield self.sample(cases[cid], points, rng, aug)

    def sample(self, case, points: Dict[str, Dict[int, np.ndarray]], rng: np.random.Generator,
               aug=None) -> Dict[str, torch.Tensor]:
        """One patch of ``case`` (a :class:`~voxmmsd.data.cache.CachedCase`)."""
        if case.label is None:
            raise ValueError(f"case {case.case_id} has no label")
        if case.case_id not in points:
            points[case.case_id] = class_points(np.asarray(case.label), self.num_classes, rng)
        shape = case.label.shape
        center = sample_center(shape, points[case.case_id], rng, self.foreground_ratio)
        start = patch_start(center, shape, self.patch_size)
        image = crop_patch(case.image, start, self.patch_size).astype(np.float32) / 255.0
        label = crop_patch(case.label, start, self.patch_size)
        image, _ = drop_sequences(image, rng, self.sequence_dropout)
        if aug is not None:
            out = aug({"image": torch.from_numpy(image), "label": torch.from_numpy(label[None].astype(np.float32))})
            img_t = _plain_tensor(out["image"]).float()
            lab_t = _plain_tensor(out["label"])[0].round().long()
        else:
            img_t = torch.from_numpy(image)
            lab_t = torch.from_numpy(label.astype(np.int64))
        return {"image": img_t.contiguous(), "label": lab_t.contiguous()}


def _plain_tensor(x) -> torch.Tensor:
    """A MONAI MetaTensor (or array) as a plain tensor."""
    return x.as_tensor() if hasattr(x, "as_tensor") else torch.as_tensor(x)


def make_loader(stream: PatchStream, batch_size: int, workers: int, pin_memory: bool = False,
                generator: Optional[torch.Generator] = None) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(stream, batch_size=batch_size, num_workers=workers, pin_memory=pin_memory,
                                       persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None,
                                       generator=generator)
