"""End-to-end inference speed, peak memory and Dice: the new default, ONNX Runtime, 1.0.0 and a MONAI
baseline side by side in one run, plus a batch's throughput.

Every method runs in its own fresh subprocess (so peak RSS is its own), timed from reading the
images to the written outputs, model loading included; each JSON line carries the stage times
(read, preprocess, inference, postprocess, plausibility, write; "load" is the rest: checksums,
building the network or the ONNX session).

* ours: ``Predictor`` defaults with ``--model`` (the new default) through PyTorch + all four outputs;
* onnx: the same model through ONNX Runtime, no PyTorch in the path (a package without
  ``model.onnx`` is exported first, into a temporary copy, with the project's own export code:
  ``models.package.save_package``, as ``scripts/package_cpu_model.py`` does);
* v1: the same pipeline with ``--v1-model`` (default: the bundled 1.0.0, the full-size 1 mm network);
* before (only with ``--before SRC``): ``ours`` run with another source tree's ``voxmmsd`` on
  ``PYTHONPATH`` (e.g. ``/work/main/VoxMMSDSegmentation``): the same model before a change;
* windows: our pipeline with the baseline's inferer settings (96^3 windows over the brain crop,
  overlap 0.5, constant blending, fp32), with ``--baseline-model``;
* baseline: ``monai.inferers.sliding_window_inference`` over the whole volume, 96^3 windows,
  overlap 0.5, constant blending, fp32, then the NIfTI label map; the network is
  ``--baseline-model`` (default: ``--v1-model``, the 1 mm network MONAI's recipe runs);
* baseline-shifted (not in the default list): the baseline on the volume zero-padded by 24 voxels
  before each axis and cut back (its window grid moved);
* batch: ``run_batch`` (the ``voxmmsd segment --batch`` engine: next case read while the current one
  computes, every output written) over ``--batch-cases`` case folders made of symbolic links to the
  four images of ``--case`` and ``--extra-cases`` in turn; cases per hour, peak RSS, and the RSS
  after each quarter of the cases (flat memory: no growth from case to case).

Usage::

    python benchmarks/bench_inference.py --case ../shared/data/brats2018/Brats18_2013_3_1 \
        --model pieces/v3/fold0 [--v1-model Resources/models/voxmmsd-brats-default/1.0.0] \
        [--methods ours,onnx,v1,baseline,batch] [--repeats 2] [--batch-cases 20] \
        [--extra-cases DIR1,DIR2] [--before /work/main/VoxMMSDSegmentation]

Without ``--model`` a full-size (32..512) U-Net with random weights is packaged in a temporary
folder. ``--repeats N`` runs the single-case methods (not the baselines) N times, interleaved, and
reports the fastest and the median. Prints one JSON line per run, then a summary table with the
ratios measured in this run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

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
    "before": {"backend": "torch"},
    "onnx": {"backend": "onnx"},
    "v1": {"backend": "torch"},
    "windows": {"backend": "torch", "precision": "fp32", "patch_size": (96, 96, 96), "overlap": 0.5,
                "blend": "constant"},
}
#: the methods that are run once even with --repeats (minutes each)
ONCE = ("baseline", "baseline-shifted", "batch")
SEQUENCE_FILES = ("t1n", "t1c", "t2w", "t2f")


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
    stages = {k: round(float(v), 3) for k, v in pred.timings_s.items()}
    stages["load"] = round(seconds - sum(pred.timings_s.values()), 3)
    return {"seconds": seconds, "run": pred.run, "timings_s": stages,
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


def rss_gb() -> float:
    """This process's resident memory now (GB), from /proc (0 where there is none)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024 ** 3
    except (OSError, ValueError):
        return 0.0


def make_batch(folder: Path, sources: List[Path], n: int) -> Path:
    """``n`` case folders ``case000..`` of symbolic links to the four images of ``sources`` in turn."""
    from voxmmsd.io.discovery import find_case

    found = [find_case(src) for src in sources]
    for i in range(n):
        files = found[i % len(found)]
        case = folder / f"case{i:03d}"
        case.mkdir(parents=True)
        for seq in SEQUENCE_FILES:
            (case / f"case{i:03d}-{seq}.nii.gz").symlink_to(Path(files.sequences[seq]).resolve())
    return folder


class RssLog:
    """``run_batch``'s event sink: the RSS after every finished case."""

    def __init__(self) -> None:
        self.after: List[float] = []

    def emit(self, stage: str, kind: str, **fields: Any) -> None:
        if stage == "segment" and kind == "progress":
            self.after.append(round(rss_gb(), 3))


def worker_batch(sources: List[Path], model: str, out: Path, n: int) -> Dict[str, Any]:
    from voxmmsd.infer.batch import discover_cases, run_batch
    from voxmmsd.infer.predictor import Predictor, PredictorConfig
    from voxmmsd.models.catalog import resolve_model

    data = make_batch(Path(tempfile.mkdtemp(prefix="bench-batch-")) / "cases", sources, n)
    peak = [0.0]
    stop = threading.Event()

    def sample() -> None:  # the peak between cases too, not only what getrusage keeps
        while not stop.wait(0.1):
            peak[0] = max(peak[0], rss_gb())

    threading.Thread(target=sample, daemon=True).start()
    t0 = time.perf_counter()
    pkg = resolve_model(model)
    predictor = Predictor(pkg, PredictorConfig(backend="torch"))
    log = RssLog()
    results = run_batch(predictor, discover_cases(data), out, events=log, progress_bar=False)
    seconds = time.perf_counter() - t0
    stop.set()
    done = sum(r.status == "done" for r in results)
    q = [log.after[max(0, round(len(log.after) * f) - 1)] for f in (0.25, 0.5, 0.75, 1.0)] if log.after else []
    return {"seconds": seconds, "cases": n, "done": done, "cases_per_hour": round(3600 * done / seconds, 1),
            "seconds_per_case": round(seconds / max(done, 1), 3),
            "case_seconds_median": round(statistics.median([r.seconds for r in results]), 3),
            "rss_gb_after_quarters": q, "rss_gb_sampled_peak": round(peak[0], 3)}


def with_onnx(model: str, folder: Path) -> str:
    """``model`` itself when its package holds model.onnx, else a copy exported with the project's code."""
    from voxmmsd.models.catalog import resolve_model
    from voxmmsd.models.package import save_package

    pkg = resolve_model(model)
    if pkg.onnx_path is not None:
        return model
    save_package(folder, pkg.load_state_dict(), pkg.unet_config(), pkg.preprocessing, model_id=pkg.id,
                 version=pkg.version, sequences=pkg.sequences, tolerates_missing=pkg.tolerates_missing,
                 training=dict(pkg.meta.get("training", {})), metrics=pkg.meta.get("metrics", {}), export_onnx=True,
                 description=pkg.meta.get("description", ""), name=pkg.meta.get("name"),
                 license=pkg.meta.get("license", ""), inference=pkg.inference, half_precision=True)
    return str(folder)


def run_worker(method: str, case: Path, model: str, out: Path, src: Optional[str] = None,
               extra: Optional[List[str]] = None) -> Dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", method, "--case", str(case), "--model", model, "--out", str(out)]
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src
    res = subprocess.run(cmd + list(extra or []), capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise SystemExit(f"{method} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def machine() -> Dict[str, Any]:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    out: Dict[str, Any] = {"cpu": cpu, "cpus": os.cpu_count(), "python": sys.version.split()[0],
                           "load_average": [round(v, 2) for v in os.getloadavg()]}
    for pkg in ("torch", "onnxruntime", "monai", "SimpleITK", "numpy"):
        try:
            import importlib.metadata as md

            out[pkg] = md.version(pkg)
        except Exception:  # noqa: BLE001 - not installed
            continue
    return out


def summarise(results: Dict[str, List[Dict[str, Any]]]) -> List[str]:
    """The summary lines: per method the fastest and median run, its stages, and this run's ratios."""
    best = {m: min(rs, key=lambda r: r["seconds"]) for m, rs in results.items()}
    lines = ["method | end to end fastest (median) | CPU s | stages of the fastest run | peak RSS | Dice WT/TC/ET"]
    for m, rs in results.items():
        r = best[m]
        med = statistics.median(x["seconds"] for x in rs)
        if m == "batch":
            lines.append(f"batch | {r['cases']} cases in {r['seconds']:.1f} s = {r['cases_per_hour']:.0f} cases/hour "
                         f"| {r.get('cpu_s', '')} CPU s "
                         f"({r['seconds_per_case']:.2f} s/case) | RSS after each quarter "
                         f"{r['rss_gb_after_quarters']} GB | peak {r['peak_rss_gb']:.2f} GB |")
            continue
        stages = " ".join(f"{k} {v:.2f}" for k, v in r.get("timings_s", {}).items())
        dice = "/".join(f"{r['dice'][k]:.1f}" for k in ("WT", "TC", "ET")) if "dice" in r else ""
        lines.append(f"{m} | {r['seconds']:.2f} s ({med:.2f} s, {len(rs)} run(s)) | {r.get('cpu_s', '')} | {stages} | "
                     f"{r['peak_rss_gb']:.2f} GB | {dice}")

    def ratio(a: str, b: str, what: str = "end to end") -> None:
        if a in best and b in best:
            x, y = best[a], best[b]
            if what == "network":
                x, y = x["timings_s"]["inference"], y["timings_s"]["inference"]
            else:
                x, y = x["seconds"], y["seconds"]
            lines.append(f"{a} / {b} ({what}, fastest runs): {x / y:.2f}")

    ratio("onnx", "ours")
    ratio("onnx", "ours", "network")
    ratio("before", "ours")
    ratio("v1", "ours")
    for m in best:
        if m not in ("baseline", "batch") and "baseline" in best:
            lines.append(f"baseline / {m}: {best['baseline']['seconds'] / best[m]['seconds']:.1f}x faster")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", type=Path, required=True, help="a real case folder with a reference label")
    ap.add_argument("--model", default=None, help="package folder or id (default: random full-size U-Net)")
    ap.add_argument("--v1-model", default=None, help="the 1.0.0 package (default: the bundled one)")
    ap.add_argument("--baseline-model", default=None, help="network of baseline/windows (default: --v1-model)")
    ap.add_argument("--methods", default="ours,onnx,v1,windows,baseline,batch")
    ap.add_argument("--repeats", type=int, default=1, help="runs of each single-case method (not the baselines)")
    ap.add_argument("--batch-cases", type=int, default=20)
    ap.add_argument("--extra-cases", default="", help="comma-separated case folders the batch also cycles through")
    ap.add_argument("--before", default=None, help="source tree (PYTHONPATH) for the 'before' method")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--worker", choices=tuple(OUR_METHODS) + ("baseline", "baseline-shifted", "batch"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        out = Path(args.out) / args.worker
        if args.worker.startswith("baseline"):
            result = worker_baseline(args.case, args.model, out, 24 if args.worker == "baseline-shifted" else 0)
        elif args.worker == "batch":
            sources = [args.case] + [Path(p) for p in args.extra_cases.split(",") if p]
            result = worker_batch(sources, args.model, out, args.batch_cases)
        else:
            result = worker_ours(args.case, args.model, out, OUR_METHODS[args.worker])
        usage = resource.getrusage(resource.RUSAGE_SELF)
        result["peak_rss_gb"] = round(usage.ru_maxrss / 1024 ** 2, 3)
        # CPU seconds of the whole process (all threads, imports included): on a loaded machine the wall
        # time stretches with the other processes' share, this much less
        result["cpu_s"] = round(usage.ru_utime + usage.ru_stime, 3)
        result["method"] = args.worker
        print(json.dumps(result))
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="bench-inference-"))
    model = args.model or str(make_random_package(tmp / "model"))
    root = Path(__file__).resolve().parent.parent
    v1 = args.v1_model or str(root / "Resources" / "models" / "voxmmsd-brats-default" / "1.0.0")
    base_model = args.baseline_model or v1
    out = args.out or tmp / "out"
    methods = [m for m in args.methods.split(",") if m]
    if args.before and "before" not in methods:
        methods.insert(1, "before")
    models = {m: model for m in methods}
    models.update({m: base_model for m in methods if m in ("windows", "baseline", "baseline-shifted")})
    if "v1" in models:
        models["v1"] = v1
    if "onnx" in models:
        models["onnx"] = with_onnx(model, tmp / "onnx-model")
    print(json.dumps({"machine": machine(), "case": str(args.case), "models": models, "methods": methods,
                      "repeats": args.repeats, "command": " ".join(sys.argv)}))
    results: Dict[str, List[Dict[str, Any]]] = {m: [] for m in methods}
    extra = ["--batch-cases", str(args.batch_cases), "--extra-cases", args.extra_cases]
    for rep in range(max(args.repeats, 1)):
        for m in methods:
            if rep and m in ONCE:
                continue
            r = run_worker(m, args.case, models[m], out / f"run{rep}", args.before if m == "before" else None,
                           extra if m == "batch" else None)
            r["repeat"] = rep
            results[m].append(r)
            print(json.dumps(r), flush=True)
    print(json.dumps({"load_average_at_end": [round(v, 2) for v in os.getloadavg()]}))
    for line in summarise(results):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
