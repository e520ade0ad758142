"""End-to-end inference speed, peak memory and Dice: our default path vs a MONAI baseline.

Both run the same network and weights on the same real case, each in a fresh
subprocess (so peak RSS is its own), timed from reading the images to the written
label map:

* ours: ``Predictor`` defaults (crop to the brain, one pass over the whole crop,
  BatchNorm folded, bf16 autocast + channels-last-3d where supported) + all outputs;
* onnx: the same, through ONNX Runtime (fp32) with no PyTorch in the path;
* windows: our pipeline with the baseline's inferer settings (96^3 windows over the
  brain crop, overlap 0.5, constant blending, fp32). It shows where a Dice difference
  between ours and the baseline comes from: the pipeline (then windows differs from
  the baseline) or the one-pass context (then windows matches the baseline);
* baseline: ``monai.inferers.sliding_window_inference`` over the whole volume, 96^3
  windows, overlap 0.5, constant blending, fp32, then the NIfTI label map;
* baseline-shifted (not in the default list): the baseline on the volume zero-padded by
  24 voxels before each axis and cut back, i.e. the same inferer with its window grid
  moved. Its Dice against the baseline's shows how much the baseline's own result
  depends on where the window borders fall.

Usage::

    .venv/bin/python benchmarks/bench_inference.py --case ../shared/data/brats2018/Brats18_2013_3_1 \
        [--model PACKAGE_DIR_OR_ID] [--methods ours,onnx,windows,baseline]

Without ``--model`` a full-size (32..512) U-Net with random weights is packaged in a
temporary folder. Prints one JSON line per method, then the ratios against the baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict

import numpy as np


def dice(a: np.ndarray, b: np.ndarray) -> float:
    s = int(a.sum()) + int(b.sum())
    return 1.0 if s == 0 else 2.0 * int(np.logical_and(a, b).sum()) / s


def region_dice(pred: np.ndarray, ref: np.ndarray) -> Dict[str, float]:
    from voxmmsd.io.labels import region_masks

    p, r = region_masks(pred), region_masks(ref)
    return {k: round(100 * dice(p[k], r[k]), 2) for k in ("WT", "TC", "ET")}


def reference_label(files: Any) -> np.ndarray:
    import SimpleITK as sitk
    from voxmmsd.io.labels import detect_convention, to_internal

    lab = sitk.GetArrayFromImage(sitk.ReadImage(str(files.label))).astype(np.uint8)
    return to_internal(lab, detect_convention(np.unique(lab)) or "brats2023")


#: PredictorConfig settings of each of our methods
OUR_METHODS: Dict[str, Dict[str, Any]] = {
    "ours": {"backend": "torch"},
    "onnx": {"backend": "onnx"},
    "windows": {"backend": "torch", "precision": "fp32", "patch_size": (96, 96, 96), "overlap": 0.5,
                "blend": "constant"},
}


def worker_ours(case_dir: Path, model: str, out: Path, settings: Dict[str, Any]) -> Dict[str, Any]:
    from voxmmsd.infer.outputs import write_outputs
    from voxmmsd.infer.predictor import Predictor, PredictorConfig
    from voxmmsd.io.discovery import find_case
    from voxmmsd.models.catalog import resolve_model

    files = find_case(case_dir)
    t0 = time.perf_counter()
    pkg = resolve_model(model)
    pred = Predictor(pkg, PredictorConfig(**settings)).predict_files(files)
    write_outputs(pred, out, {"id": pkg.id, "version": pkg.version}, pkg.label_table)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "run": pred.run, "timings_s": pred.timings_s,
            "dice": region_dice(pred.label, reference_label(files))}


def worker_baseline(case_dir: Path, model: str, out: Path, shift: int = 0) -> Dict[str, Any]:
    import torch
    from monai.inferers import sliding_window_inference
    from voxmmsd.io.discovery import find_case
    from voxmmsd.io.reader import load_case
    from voxmmsd.io.writer import write_label_nifti
    from voxmmsd.models.catalog import resolve_model
    from voxmmsd.nets.unet import VoxUNet
    from voxmmsd.nets.weights import load_into
    from voxmmsd.preprocessing import scale_percentile

    files = find_case(case_dir)
    t0 = time.perf_counter()
    pkg = resolve_model(model)
    net = VoxUNet(pkg.unet_config())
    load_into(net, pkg.load_state_dict(), strict=True)
    net.eval()
    case = load_case(files, with_label=False)
    image = scale_percentile(case.image, pkg.preprocessing.percentile, np.any(case.image != 0, axis=0))
    if shift:
        image = np.pad(image, [(0, 0)] + [(shift, 0)] * 3)
    with torch.inference_mode():
        logits = sliding_window_inference(torch.from_numpy(image)[None], (96, 96, 96), 1, net, overlap=0.5,
                                          mode="constant")
    label = logits[0].argmax(0).numpy().astype(np.uint8)[shift:, shift:, shift:]
    write_label_nifti(label, case.geometry, out / "segmentation.nii.gz")
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "dice": region_dice(label, reference_label(files))}


def make_random_package(folder: Path) -> Path:
    import torch
    from voxmmsd.models.package import save_package
    from voxmmsd.nets.unet import UNetConfig, VoxUNet
    from voxmmsd.preprocessing import PreprocessConfig

    torch.manual_seed(0)
    cfg = UNetConfig()
    return save_package(folder, VoxUNet(cfg).state_dict(), cfg, PreprocessConfig(), model_id="bench-random",
                        version="0", description="random weights, for speed benchmarks only")


def run_worker(method: str, case: Path, model: str, out: Path) -> Dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", method, "--case", str(case), "--model", model, "--out", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"{method} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", type=Path, required=True, help="a real case folder with a reference label")
    ap.add_argument("--model", default=None, help="package folder or id (default: random full-size U-Net)")
    ap.add_argument("--methods", default="ours,onnx,windows,baseline")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--worker", choices=tuple(OUR_METHODS) + ("baseline", "baseline-shifted"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        out = Path(args.out) / args.worker
        if args.worker.startswith("baseline"):
            result = worker_baseline(args.case, args.model, out, 24 if args.worker == "baseline-shifted" else 0)
        else:
            result = worker_ours(args.case, args.model, out, OUR_METHODS[args.worker])
        result["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2, 3)
        result["method"] = args.worker
        print(json.dumps(result))
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="bench-inference-"))
    model = args.model or str(make_random_package(tmp / "model"))
    out = args.out or tmp / "out"
    print(json.dumps({"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
                      "case": str(args.case), "model": model}))
    results = {}
    for method in args.methods.split(","):
        results[method] = run_worker(method, args.case, model, out)
        print(json.dumps(results[method]))
    if "baseline" in results:
        base = results["baseline"]
        for method, r in results.items():
            if method == "baseline":
                continue
            ddice = {k: round(r["dice"][k] - base["dice"][k], 2) for k in r["dice"]}
            print(f"{method}: {base['seconds'] / r['seconds']:.1f}x faster than the baseline "
                  f"({r['seconds']:.1f} s vs {base['seconds']:.1f} s), peak {r['peak_rss_gb']:.2f} GB vs "
                  f"{base['peak_rss_gb']:.2f} GB, Dice difference (points) {ddice}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
