"""Training patches from the preprocessed-case cache.

Each patch is centred either on a random voxel of the case (its crop box clipped to
the volume) or, with probability ``foreground_ratio``, on a voxel of a randomly chosen
tumour class present in the case (foreground over-sampling, so small classes such as
ET are seen often). Then MONAI spatial and intensity augmentation and, optionally,
sequence dropout (whole sequences set to 0, which is how inference fills a missing one)
and simulated clinical acquisitions (:func:`simulate_acquisition`: thick slices resampled
back to the training grid, lower SNR, a bias field), so that a 5 mm clinical exam
resampled to 1 mm is not a texture the network has never seen.

The stream opens the cache lazily in each worker process, so only case ids and the
cache folder travel to the workers, never the volumes.
"""

from __future__ import annotations

import logging
import zlib
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


def thick_slices(channel: np.ndarray, axis: int, factor: float) -> np.ndarray:
    """``channel`` (D, H, W) as if acquired with slices ``factor`` times thicker along ``axis``, then
    resampled back (linear) to its grid: a box average over the slice thickness, one sample per
    thick slice, linear interpolation back, the way a 5 mm exam looks after resampling to 1 mm."""
    from scipy import ndimage

    n = channel.shape[axis]
    width = max(int(round(factor)), 1)
    blurred = ndimage.uniform_filter1d(channel, size=width, axis=axis, mode="nearest") if width > 1 else channel
    m = max(int(round(n / factor)), 2)
    zoom_down = [1.0, 1.0, 1.0]
    zoom_down[axis] = m / n
    small = ndimage.zoom(blurred, zoom_down, order=1, grid_mode=True, mode="nearest")
    zoom_up = [1.0, 1.0, 1.0]
    zoom_up[axis] = n / small.shape[axis]
    out = ndimage.zoom(small, zoom_up, order=1, grid_mode=True, mode="nearest")
    return out.astype(channel.dtype, copy=False)


def bias_field(shape, rng: np.random.Generator, strength: float) -> np.ndarray:
    """A smooth multiplicative field (D, H, W) around 1: the exponential of a random linear+quadratic form."""
    grids = np.meshgrid(*[np.linspace(-1.0, 1.0, s, dtype=np.float32) for s in shape], indexing="ij")
    field = np.zeros(tuple(shape), np.float32)
    for g in grids:
        field += float(rng.normal(0, strength)) * g + float(rng.normal(0, strength)) * (g * g - 0.33)
    return np.exp(field)


def simulate_acquisition(image: np.ndarray, rng: np.random.Generator, probability: float,
                         spacing_mm: float = 2.0) -> Tuple[np.ndarray, Dict[str, object]]:
    """With ``probability``, make ``image`` (C, D, H, W, in [0, 1]) look like a clinical exam.

    Thick slices of 3-6 mm along one axis (the through-plane z axis in 60 % of the draws) in a random
    non-empty subset of the sequences; then, each with probability 0.5, Rician noise (sigma 0.02-0.08)
    and a bias field. Background stays 0. Returns the image and what was done.
    """
    if probability <= 0 or rng.random() >= probability:
        return image, {}
    out = image.copy()
    brain = np.any(image > 0, axis=0)
    axis = 0 if rng.random() < 0.6 else int(rng.integers(1, 3))
    thickness = float(rng.uniform(3.0, 6.0))
    factor = max(thickness / spacing_mm, 1.0)
    chosen = [c for c in range(image.shape[0]) if rng.random() < 0.6] or [int(rng.integers(image.shape[0]))]
    for c in chosen:
        out[c] = thick_slices(out[c], axis, factor)
    done: Dict[str, object] = {"axis": axis, "thickness_mm": round(thickness, 2), "channels": chosen}
    if rng.random() < 0.5:
        sigma = float(rng.uniform(0.02, 0.08))
        n1 = rng.normal(0, sigma, out.shape).astype(np.float32)
        n2 = rng.normal(0, sigma, out.shape).astype(np.float32)
        out = np.sqrt((out + n1) ** 2 + n2 ** 2)
        done["noise"] = round(sigma, 3)
    if rng.random() < 0.5:
        out = out * bias_field(out.shape[1:], rng, 0.15)[None]
        done["bias"] = True
    out = np.clip(out, 0.0, 1.0)
    out[:, ~brain] = 0.0
    return out.astype(np.float32, copy=False), done


def channel_intensity(image: np.ndarray, rng: np.random.Generator,
                      probability: float) -> Tuple[np.ndarray, Dict[str, object]]:
    """Per channel of ``image`` (C, D, H, W, brain in [0, 1], background 0), each with ``probability``:
    a gamma (0.7-1.5), a contrast scale (0.75-1.25) and a brightness shift (-0.1..0.1), each channel
    drawn on its own, so that no fixed relation between the sequences' intensities can be learnt
    (other pipelines and scanners shift one sequence against another). Background stays 0."""
    if probability <= 0:
        return image, {}
    brain = np.any(image > 0, axis=0)
    out = image
    done: Dict[str, object] = {}
    for c in range(image.shape[0]):
        if rng.random() >= probability:
            continue
        if out is image:
            out = image.copy()
        ch = out[c]
        gamma = float(rng.uniform(0.7, 1.5))
        scale = float(rng.uniform(0.75, 1.25))
        shift = float(rng.uniform(-0.1, 0.1))
        ch = np.power(np.clip(ch, 0.0, 1.0), gamma) * scale + shift
        ch = np.clip(ch, 0.0, 1.0)
        ch[~brain] = 0.0
        out[c] = ch
        done[str(c)] = (round(gamma, 3), round(scale, 3), round(shift, 3))
    return out.astype(np.float32, copy=False), done


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
                 seed: int = 0, clinical: float = 0.0, spacing_mm: float = 1.0, channel_jitter: float = 0.0) -> None:
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
        self.clinical = clinical
        self.spacing_mm = spacing_mm
        self.channel_jitter = channel_jitter

    #: the stream begins at batch number ``start`` of ``batch_size`` samples (see :meth:`positioned`)
    start = 0
    batch_size = 1

    def positioned(self, start: int, batch_size: int) -> "PatchStream":
        """Begin at batch ``start`` (the iteration a run resumes at), in batches of ``batch_size``."""
        self.start, self.batch_size = int(start), int(batch_size)
        return self

    def sample_rng(self, index: int) -> np.random.Generator:
        """The generator of global sample ``index``: the same whichever worker or resumed run draws it."""
        return np.random.default_rng([int(self.seed), int(index), 0xF17E])

    def __iter__(self) -> Iterator[Dict[str, torch.Tensor]]:
        from voxmmsd.data.cache import open_case

        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        aug = build_augmentation(self.seed) if self.augment else None
        cases = {cid: open_case(self.cache_folder, cid) for cid in self.case_ids}
        points: Dict[str, Dict[int, np.ndarray]] = {}
        batch = self.start + worker
        while True:  # worker w makes batches w, w + W, ...; the DataLoader hands them out in that order
            for j in range(self.batch_size):
                rng = self.sample_rng(batch * self.batch_size + j)
                if aug is not None and hasattr(aug, "set_random_state"):
                    aug.set_random_state(seed=int(rng.integers(2 ** 32)))
                cid = self.case_ids[int(rng.integers(len(self.case_ids)))]
                yield self.sample(cases[cid], points, rng, aug)
            batch += workers

    def sample(self, case, points: Dict[str, Dict[int, np.ndarray]], rng: np.random.Generator,
               aug=None) -> Dict[str, torch.Tensor]:
        """One patch of ``case`` (a :class:`~voxmmsd.data.cache.CachedCase`)."""
        if case.label is None:
            raise ValueError(f"case {case.case_id} has no label")
        if case.case_id not in points:
            # drawn from the case's own generator, so the points do not depend on which sample came first
            case_rng = np.random.default_rng(zlib.crc32(str(case.case_id).encode("utf-8")))
            points[case.case_id] = class_points(np.asarray(case.label), self.num_classes, case_rng)
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
        if self.clinical > 0:
            sim, _ = simulate_acquisition(img_t.numpy(), rng, self.clinical, self.spacing_mm)
            img_t = torch.from_numpy(np.ascontiguousarray(sim))
        if self.channel_jitter > 0:
            jit, _ = channel_intensity(img_t.numpy(), rng, self.channel_jitter)
            img_t = torch.from_numpy(np.ascontiguousarray(jit))
        return {"image": img_t.contiguous(), "label": lab_t.contiguous()}


def _plain_tensor(x) -> torch.Tensor:
    """A MONAI MetaTensor (or array) as a plain tensor."""
    return x.as_tensor() if hasattr(x, "as_tensor") else torch.as_tensor(x)


def make_loader(stream: PatchStream, batch_size: int, workers: int, pin_memory: bool = False,
                generator: Optional[torch.Generator] = None) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(stream, batch_size=batch_size, num_workers=workers, pin_memory=pin_memory,
                                       persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None,
                                       generator=generator)
