"""Speed of the evaluation metrics against baselines, side by side in one process.

Usage: python benchmarks/bench_metrics.py [DATA_DIR] [N_CASES]
DATA_DIR holds BraTS case folders with a '_seg' / '-seg' label map (default
../shared/data/brats2018). Predictions are the references shifted by 2 voxels and
eroded, plus a false-positive cube, so every metric has work to do.

Compared per region (WT, TC, ET), median seconds per case:
* HD95: ours (crop + scipy EDT) vs MONAI compute_hausdorff_distance(percentile=95)
  vs DeepMind surface-distance (what the official BraTS 2023 script calls), full volume;
* lesion-wise: ours (crops per lesion) vs the literal full-volume procedure.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from voxmmsd.io.labels import REGIONS, detect_convention, to_internal
from voxmmsd.metrics.lesionwise import lesion_wise
from voxmmsd.metrics.surface import hd95

log = logging.getLogger("bench_metrics")


def _cases(root: Path, n: int):
    for folder in sorted(p for p in root.iterdir() if p.is_dir())[:n]:
        seg = next(f for f in folder.iterdir() if "seg" in f.name)
        img = sitk.ReadImage(str(seg))
        arr = sitk.GetArrayFromImage(img)
        ref = to_internal(arr, detect_convention(np.unique(arr)) or "brats2023")
        pred = np.roll(ref, (2, -2, 1), axis=(0, 1, 2))
        pred[ndimage.binary_erosion(pred > 0) ^ (pred > 0)] = 0
        pred[60:66, 60:66, 60:66] = 2
        yield folder.name, pred, ref, img.GetSpacing()


def _timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t, out


def _monai_hd95(pred, ref, spacing):
    import torch
    from monai.metrics import compute_hausdorff_distance

    return compute_hausdorff_distance(torch.from_numpy(pred)[None, None], torch.from_numpy(ref)[None, None],
                                      include_background=True, percentile=95, spacing=list(spacing[::-1])).item()


def _official_hd95(pred, ref, spacing):
    import surface_distance as sd

    if not hasattr(np, "Inf"):
        np.Inf = np.inf
    return sd.compute_robust_hausdorff(sd.compute_surface_distances(ref, pred, tuple(spacing[::-1])), 95)


def _literal_lesion_wise(pred, ref, it=3, min_voxels=50):
    conn26, conn18 = np.ones((3, 3, 3), bool), ndimage.generate_binary_structure(3, 2)
    ref_cc, _ = ndimage.label(ref, conn26)
    pred_cc, n_pred = ndimage.label(pred, conn26)
    dil_cc, n_dil = ndimage.label(ndimage.binary_dilation(ref, conn18, iterations=it), conn26)
    merged = np.where(ref_cc > 0, dil_cc, 0)
    tp, scores = [], []
    for comp in range(1, n_dil + 1):
        gt = merged == comp
        hits = [h for h in np.unique(pred_cc[ndimage.binary_dilation(gt, conn18, iterations=it)]) if h]
        tp += hits
        pr = np.isin(pred_cc, hits)
        if gt.sum() > min_voxels:
            scores.append((2.0 * (gt & pr).sum() / (gt.sum() + pr.sum()), hd95(pr, gt)))
    n_fp = len(set(range(1, n_pred + 1)) - set(tp))
    return sum(s[0] for s in scores) / max(len(scores) + n_fp, 1)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared/data/brats2018"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 6
    times = {k: [] for k in ("ours_hd95", "monai_hd95", "official_hd95", "ours_lw", "literal_lw")}
    for cid, pred, ref, spacing in _cases(root, n):
        for values in REGIONS.values():
            p, r = np.isin(pred, values), np.isin(ref, values)
            t0, a = _timed(hd95, p, r, spacing)
            t1, b = _timed(_monai_hd95, p, r, spacing)
            t2, c = _timed(_official_hd95, p, r, spacing)
            t3, lw = _timed(lesion_wise, p, r, spacing)
            t4, lw2 = _timed(_literal_lesion_wise, p, r)
            for k, t in zip(times, (t0, t1, t2, t3, t4)):
                times[k].append(t)
            log.info("%s %s: HD95 ours %.3f MONAI %.3f official %.3f | LW Dice ours %.4f literal %.4f",
                     cid, values, a, b, c, lw.dice, lw2)
    med = {k: float(np.median(v)) for k, v in times.items()}
    print(f"cases {n}, {len(times['ours_hd95'])} region evaluations; median seconds per region")
    ours = med["ours_hd95"]
    print(f"HD95   ours {ours:.3f}  MONAI {med['monai_hd95']:.3f} ({med['monai_hd95'] / ours:.1f}x)"
          f"  official {med['official_hd95']:.3f} ({med['official_hd95'] / ours:.1f}x)")
    print(f"LW     ours {med['ours_lw']:.3f}  literal {med['literal_lw']:.3f} "
          f"({med['literal_lw'] / med['ours_lw']:.1f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
