"""Training pairs per second: our pre-training sampler vs a loader that works like the authors'.

Both run in this process, one after the other in alternating rounds, on the same real
case, single-threaded (so the ratio is per CPU core).

- baseline: what the authors' view generator does per sample: read and decompress the
  whole preprocessed case (uint8 NIfTI, as they store it), deep-copy it twice, argwhere
  over the full 4-D volume twice, draw two independent 96^3 crops, min-max normalise,
  build block masks by nearest-neighbour zoom, check that at least 1024 overlapping voxels
  are visible in a random sequence (else retry), then the six intensity augmentations in
  numpy/SciPy.
- ours (loader): :func:`voxmmsd.pretrain.sampler.sample_pair` on the memory-mapped cache
  (crops, block grids, ORMS pairs, augmentation parameters) - what a DataLoader worker does.
- ours (loader + views): the above plus building the masked, augmented float views with
  torch on the CPU - the work the GPU does in a real run.

With ``--step``: one optimisation step (views, student and teacher forward, losses and
diagnostics, backward, optimiser, EMA, centre) of the head before issue 11 (``head=paper``,
``teacher_bn=running``: Linear-BN-ReLU head, teacher on running statistics) against the
current defaults (``head=dino``, ``teacher_bn=batch``), alternating, on the same batches.

Usage: python benchmarks/bench_pretrain_sampler.py [--case DIR] [--rounds N] [--step [--sets k=v ...]]
"""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
import time
from pathlib import Path
from typing import Callable, List

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import SimpleITK as sitk
import torch
from scipy.ndimage import gaussian_filter, zoom
from voxmmsd.data.cache import build_cache
from voxmmsd.io.discovery import DataSet, find_case
from voxmmsd.preprocessing import PreprocessConfig
from voxmmsd.pretrain.config import PretrainConfig
from voxmmsd.pretrain.sampler import sample_pair, sample_rng
from voxmmsd.pretrain.step import build_views

CROP = (96, 96, 96)
PAIRS = 1024


# ---------------------------------------------------------------- baseline (authors' way)
def _read_case(paths: List[Path]) -> np.ndarray:
    return np.stack([sitk.GetArrayFromImage(sitk.ReadImage(str(p))) for p in paths]).astype(np.float32)


def _box(shape, rng) -> tuple:
    start = [0] + [int(rng.integers(0, s - c + 1)) for s, c in zip(shape[1:], CROP)]
    return start, [shape[0]] + [a + c for a, c in zip(start[1:], CROP)]


def _mask(image: np.ndarray, rng, size: int = 16, ratio: float = 0.875) -> np.ndarray:
    c, d, h, w = image.shape
    grid = rng.random((c, d // size, h // size, w // size))
    m = zoom(grid, (1, size, size, size), order=0) > (1 - ratio)
    out = image.copy()
    out[m] = 0.0
    return out


def _augment(image: np.ndarray, rng) -> np.ndarray:
    for ch in range(image.shape[0]):
        image[ch] += rng.normal(0, 0.05, image[ch].shape)
    if rng.random() < 0.8:
        for ch in range(image.shape[0]):
            if rng.random() < 0.5:
                image[ch] = gaussian_filter(image[ch], rng.uniform(0.1, 2.0))
    if rng.random() < 0.85:
        image *= rng.uniform(0.75, 1.25)
    if rng.random() < 0.5:
        image += rng.uniform(0, 0.4)
    if rng.random() < 0.5:
        for ch in range(image.shape[0]):
            mn, lo, hi = image[ch].mean(), image[ch].min(), image[ch].max()
            image[ch] = np.clip((image[ch] - mn) * rng.uniform(0.75, 1.25) + mn, lo, hi)
    for ch in range(image.shape[0]):
        if rng.random() < 0.8:
            lo, hi = image[ch].min(), image[ch].max()
            image[ch] = ((image[ch] - lo) / max(hi - lo, 1e-8)) ** rng.uniform(0.7, 1.5) * (hi - lo) + lo
    return image


def baseline_pair(paths: List[Path], rng) -> dict:
    case = _read_case(paths)
    while True:
        a, b = copy.deepcopy(case), copy.deepcopy(case)
        vox1, vox2 = np.argwhere(a != 0), np.argwhere(b != 0)
        (s1, e1), (s2, e2) = _box(a.shape, rng), _box(b.shape, rng)
        v1 = a[tuple(slice(s, e) for s, e in zip(s1, e1))]
        v2 = b[tuple(slice(s, e) for s, e in zip(s2, e2))]
        t1 = (v1 - v1.min()) / max(v1.max() - v1.min(), 1e-8)
        t2 = (v2 - v2.min()) / max(v2.max() - v2.min(), 1e-8)
        m1, m2 = _mask(v1, rng), _mask(v2, rng)
        l1, l2 = vox1 - np.asarray(s1), vox2 - np.asarray(s2)
        ok = np.all((l1 >= 0) & (l1 < (4,) + CROP), axis=1) & np.all((l2 >= 0) & (l2 < (4,) + CROP), axis=1)
        idx = np.flatnonzero(ok)
        if idx.size == 0:
            continue
        o1, o2 = l1[idx], l2[idx]
        r1, r2 = rng.integers(0, 4, idx.size), rng.integers(0, 4, idx.size)
        valid = (m1[r1, o1[:, 1], o1[:, 2], o1[:, 3]] > 0) & (m2[r2, o2[:, 1], o2[:, 2], o2[:, 3]] > 0)
        if valid.sum() >= PAIRS:
            pick = rng.choice(np.flatnonzero(valid), PAIRS, replace=False)
            return {"views": [_augment(m1, rng), _augment(m2, rng)], "targets": [t1, t2], "pairs": pick}


# ---------------------------------------------------------------- ours
def ours_pair(image: np.ndarray, cfg: PretrainConfig, index: int) -> dict:
    m = cfg.method
    return sample_pair(image, sample_rng(cfg.train.seed, index), cfg.data.patch_size, m.block_size, m.mask_ratio,
                       m.n_pairs, cfg.augment)


def ours_with_views(image: np.ndarray, cfg: PretrainConfig, index: int) -> torch.Tensor:
    s = ours_pair(image, cfg, index)
    batch = {k: torch.from_numpy(v)[None] for k, v in s.items()}
    return build_views(batch, cfg.method.block_size, torch.device("cpu"))[0]


def timed(fn: Callable[[], object], seconds: float, at_least: int = 1) -> tuple:
    n, t0 = 0, time.perf_counter()
    while n < at_least or time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return n, time.perf_counter() - t0


STEP_ARMS = {"before (head=paper, teacher_bn=running)": ["method.head=paper", "method.teacher_bn=running"],
             "now (head=dino, teacher_bn=batch)": ["method.head=dino", "method.teacher_bn=batch"]}


def bench_step(image: np.ndarray, sets: List[str], rounds: int, steps: int) -> None:
    """Mean time of one training step per head design, alternating rounds on the same batches."""
    from voxmmsd.jobs.distributed import DistInfo
    from voxmmsd.pretrain.config import load_config
    from voxmmsd.pretrain.dataset import PairDataset
    from voxmmsd.pretrain.loop import Trainer

    trainers, batches = {}, []
    for name, arm in STEP_ARMS.items():
        cfg = load_config(None, sets + arm + ["train.iterations=100000"])
        trainers[name] = Trainer(cfg, torch.device("cpu"), DistInfo())
        if not batches:
            ds = PairDataset([image], cfg)
            batches = [torch.utils.data.default_collate([ds[2 * i], ds[2 * i + 1]]) for i in range(steps)]
        trainers[name].step(batches[0])  # warm-up
    print(f"one training step, settings {sets}, batch 2, {steps} steps per round, 1 thread")
    totals = {k: 0.0 for k in trainers}
    for r in range(rounds):
        for name, tr in trainers.items():
            t0 = time.perf_counter()
            for b in batches:
                tr.step(b)
            dt = (time.perf_counter() - t0) / steps
            totals[name] += dt
            print(f"round {r + 1} {name:40s} {1000 * dt:9.1f} ms per step")
    print("---")
    base = totals[next(iter(totals))]
    for name, t in totals.items():
        print(f"{name:40s} {1000 * t / rounds:9.1f} ms per step  ratio vs before {t / base:5.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", type=Path, default=Path("/work/shared/data/brats2018/Brats18_2013_20_1"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10.0, help="per method and round")
    ap.add_argument("--step", action="store_true", help="time one training step, before/after issue 11's head")
    ap.add_argument("--steps", type=int, default=10, help="--step: steps per round")
    ap.add_argument("--sets", nargs="*", default=["network.channels=4,8,16,32,64", "data.patch_size=32,32,32",
                                                  "method.block_size=8", "method.n_pairs=256"],
                    help="--step: pre-training settings (default: the reduced CPU configuration)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = PretrainConfig()
    with tempfile.TemporaryDirectory() as tmp:
        files = find_case(args.case)
        cached = build_cache(DataSet(args.case.parent, (files,)), Path(tmp) / "cache", PreprocessConfig(),
                             label_convention=None, show_progress=False)[0]
        # the authors' storage: the cropped, scaled case as uint8 NIfTI, one file per sequence
        paths = []
        for c in range(cached.image.shape[0]):
            p = Path(tmp) / f"seq{c}.nii.gz"
            sitk.WriteImage(sitk.GetImageFromArray(np.asarray(cached.image[c])), str(p), True)
            paths.append(p)
        if args.step:
            bench_step(cached.image, list(args.sets), args.rounds, args.steps)
            return
        print(f"case {files.case_id}: cropped shape {tuple(cached.image.shape)}, crop {CROP}, "
              f"{PAIRS} pairs, 1 thread")
        rng = np.random.default_rng(0)
        totals = {"baseline": [0, 0.0], "ours_loader": [0, 0.0], "ours_loader_views": [0, 0.0]}
        counter = [0]

        def nxt() -> int:
            counter[0] += 1
            return counter[0]

        for r in range(args.rounds):
            for name, fn in (("baseline", lambda: baseline_pair(paths, rng)),
                             ("ours_loader", lambda: ours_pair(cached.image, cfg, nxt())),
                             ("ours_loader_views", lambda: ours_with_views(cached.image, cfg, nxt()))):
                n, dt = timed(fn, args.seconds)
                totals[name][0] += n
                totals[name][1] += dt
                print(f"round {r + 1} {name:18s} {n / dt:8.2f} pairs/s ({n} in {dt:.1f} s)")
        rate = {k: v[0] / v[1] for k, v in totals.items()}
        print("---")
        for k, v in rate.items():
            ratio = v / rate["baseline"]
            print(f"{k:18s} {v:8.2f} pairs/s  ({1000 / v:7.1f} ms per pair)  ratio vs baseline {ratio:7.1f}x")


if __name__ == "__main__":
    main()
