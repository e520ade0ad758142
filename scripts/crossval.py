#!/usr/bin/env python
"""Cross-validate a fine-tuning recipe through the product's own inference and evaluation commands.

  scripts/crossval.py splits --source brats2018=../shared/data/brats2018 --source extra=../shared/data/extra \
      --data-out /work/runs/cv/data --out docs/results/crossval/splits.json
  scripts/crossval.py run --data /work/runs/cv/data --splits docs/results/crossval/splits.json \
      --out /work/runs/cv --name new --config scripts/recipes/cpu-2.0.0.yaml [--folds 0,1] [--set KEY=VALUE]
  scripts/crossval.py score --data /work/runs/cv/data --splits ... --out /work/runs/cv --name new

``run`` trains one model per fold on the other folds (``voxmmsd finetune``, no validation
cases: the last weights, so no model selection touches the held-out fold), then segments the
held-out cases with ``voxmmsd segment --batch --model FOLD/model`` (the shipped inference path,
whole-crop pass) into ``OUT/NAME/pred/``. ``score`` runs ``voxmmsd evaluate`` over the pooled
out-of-fold predictions and writes ``OUT/NAME/crossval.json`` (mean ± SD per region, see
:func:`voxmmsd.experiment.crossval.summarise_folds`). Finished folds are kept when run again.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parent.parent
VOXMMSD = os.environ.get("VOXMMSD", str(ROOT / ".venv" / "bin" / "voxmmsd"))
log = logging.getLogger("crossval")


def _sh(cmd: List[str], log_path: Path) -> float:
    t0 = time.time()
    log.info("$ %s", " ".join(cmd))
    with open(log_path, "a", encoding="utf-8") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        subprocess.run(cmd, check=True, stdout=fh, stderr=subprocess.STDOUT)
    return time.time() - t0


def link_cases(case_dirs: Dict[str, Path], ids: List[str], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for c in ids:
        link = folder / c
        if not link.exists():
            link.symlink_to(Path(case_dirs[c]).resolve(), target_is_directory=True)
    return folder


def case_folders(data: Path) -> Dict[str, Path]:
    from voxmmsd.io.discovery import find_dataset

    ds = find_dataset(Path(data), require_all=True, require_labels=True)
    return {c.case_id: Path(c.folder) for c in ds.cases}


def cmd_splits(args: argparse.Namespace) -> int:
    from voxmmsd.experiment.crossval import make_folds, write_splits

    sources: Dict[str, str] = {}
    dirs: Dict[str, Path] = {}
    for item in args.source:
        name, _, path = item.partition("=")
        for sub in sorted(p for p in Path(path).rglob("*") if p.is_dir()):
            if any(f.name.endswith(".nii.gz") for f in sub.iterdir()):
                sources[sub.name] = name
                dirs[sub.name] = sub
    folds = make_folds(sources, args.k, args.seed)
    write_splits(args.out, folds, sources, args.seed)
    if args.data_out:
        link_cases(dirs, sorted(dirs), Path(args.data_out))
    for i, f in enumerate(folds):
        print(f"fold {i}: {', '.join(f)}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from voxmmsd.experiment.crossval import read_splits, training_ids

    folds = read_splits(args.splits)
    dirs = case_folders(args.data)
    exp = Path(args.out) / args.name
    exp.mkdir(parents=True, exist_ok=True)
    which = [int(v) for v in args.folds.split(",")] if args.folds else list(range(len(folds)))
    timings = json.loads((exp / "timings.json").read_text()) if (exp / "timings.json").exists() else {}
    for k in which:
        run = exp / f"fold{k}"
        if not (run / "model" / "model.json").exists():
            cmd = [VOXMMSD, "-q", "finetune", "--data", str(args.data), "--out", str(run), "--device", args.device,
                   "--train", ",".join(training_ids(folds, k)), "--val", "0"]
            if args.config:
                cmd += ["--config", str(args.config)]
            for s in args.set:
                cmd += ["--set", s]
            timings[f"fold{k}_train_s"] = round(_sh(cmd, exp / "log.txt"), 1)
        held = link_cases(dirs, folds[k], exp / "inputs" / f"fold{k}")
        if args.no_segment:
            continue
        seg = [VOXMMSD, "-q", "segment", "--batch", str(held), "--out", str(exp / "pred"), "--model",
               str(run / "model"), "--device", args.device, "--progress", "none", "--no-qc"] + args.segment
        timings[f"fold{k}_segment_s"] = round(_sh(seg, exp / "log.txt"), 1)
        (exp / "timings.json").write_text(json.dumps(timings, indent=1))
    return 0


def cmd_variant(args: argparse.Namespace) -> int:
    """Segment a variant of the cases (e.g. one sequence left out) with each case's out-of-fold model."""
    from voxmmsd.experiment.crossval import read_splits

    folds = read_splits(args.splits)
    exp = Path(args.out) / args.name
    present = {p.name: p for p in Path(args.variant).iterdir() if p.is_dir()}
    for k, fold in enumerate(folds):
        ids = [c for c in fold if c in present]
        if not ids:
            continue
        held = link_cases(present, ids, exp / f"inputs-{args.pred_name}" / f"fold{k}")
        _sh([VOXMMSD, "-q", "segment", "--batch", str(held), "--out", str(exp / args.pred_name), "--model",
             str(exp / f"fold{k}" / "model"), "--device", args.device, "--progress", "none", "--no-qc"],
            exp / "log.txt")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from voxmmsd.experiment.crossval import format_table, read_splits, summarise_folds
    from voxmmsd.metrics.report import read_csv

    folds = read_splits(args.splits)
    exp = Path(args.out) / args.name
    exp.mkdir(parents=True, exist_ok=True)
    pred = Path(args.pred) if args.pred else exp / "pred"
    ev = exp / (args.eval_name or "eval")
    _sh([VOXMMSD, "-q", "evaluate", "--pred", str(pred), "--ref", str(args.data), "--out", str(ev),
         "--missing", "worst", "--no-subregions"], exp / "log.txt")
    rows = read_csv(ev / "per_case.csv")
    summary = summarise_folds(rows, folds)
    sources = json.loads(Path(args.splits).read_text(encoding="utf-8")).get("sources", {})
    by_source = {}
    for src in sorted(set(sources.values())):
        sub = [[c for c in f if sources.get(c) == src] for f in folds]
        by_source[src] = summarise_folds(rows, [f for f in sub if f])
    (ev / "crossval.json").write_text(json.dumps({"name": args.name, "pred": str(pred), "summary": summary,
                                                  "by_source": by_source}, indent=1))
    print(format_table(summary))
    for src, summ in by_source.items():
        print(f"\n{src} cases only:\n{format_table(summ)}")
    return 0


def _read_label(path: Path):
    import SimpleITK as sitk
    from voxmmsd.io.labels import detect_convention, to_internal

    img = sitk.ReadImage(str(path))
    arr = sitk.GetArrayFromImage(img).astype("uint8")
    import numpy as np

    return img, to_internal(arr, detect_convention(np.unique(arr)) or "brats2023", path)


def cmd_postprocess(args: argparse.Namespace) -> int:
    """Choose the ET -> NETC volume limit per fold on the other folds' out-of-fold predictions, apply it."""
    import numpy as np
    import SimpleITK as sitk
    from voxmmsd.experiment.crossval import choose_nested, read_splits
    from voxmmsd.finetune.validate import region_dice
    from voxmmsd.infer.postprocess import min_component_voxels, small_et_to_netc

    folds = read_splits(args.splits)
    dirs = case_folders(args.data)
    exp = Path(args.out) / args.name
    limits = [float(v) for v in args.limits.split(",")]
    scores: Dict[str, Dict[float, float]] = {}
    dices: Dict[str, Dict[float, Dict[str, float]]] = {}
    cache = {}
    for c in sorted(c for f in folds for c in f):
        seg = exp / "pred" / c / "segmentation.nii.gz"
        from voxmmsd.io.discovery import find_case

        img, pred = _read_label(seg)
        _, ref = _read_label(find_case(dirs[c]).label)
        voxel_ml = float(np.prod(img.GetSpacing())) / 1000.0
        scores[c], dices[c] = {}, {}
        for lim in limits:
            out, _ = small_et_to_netc(pred, min_component_voxels(lim, voxel_ml))
            d = region_dice(out, ref)
            scores[c][lim] = (d["TC"] + d["ET"]) / 2.0
            dices[c][lim] = d
        cache[c] = (img, pred, voxel_ml)
    chosen = choose_nested(scores, folds)
    dest = exp / "pred-pp"
    applied = {}
    for k, f in enumerate(folds):
        for c in f:
            applied[c] = dices[c][chosen[k]]
            if not args.write:
                continue
            img, pred, voxel_ml = cache[c]
            out, _ = small_et_to_netc(pred, min_component_voxels(chosen[k], voxel_ml))
            (dest / c).mkdir(parents=True, exist_ok=True)
            o = sitk.GetImageFromArray(out)
            o.CopyInformation(img)
            sitk.WriteImage(o, str(dest / c / "segmentation.nii.gz"), True)
    nested = {r: {"mean": float(np.mean([applied[c][r] for c in applied])),
                  "sd_cases": float(np.std([applied[c][r] for c in applied], ddof=1)),
                  "without": float(np.mean([dices[c][0.0][r] for c in applied])) if 0.0 in limits else None}
              for r in ("WT", "TC", "ET")}
    record = {"limits_ml": limits, "chosen_ml_per_fold": chosen, "nested_dice": nested,
              "per_case_dice_applied": applied,
              "mean_tc_et_dice_by_limit": {str(lim): float(np.mean([scores[c][lim] for c in scores]))
                                           for lim in limits}}
    (exp / "postprocess.json").write_text(json.dumps(record, indent=1))
    print(json.dumps(record, indent=1))
    return 0


def cmd_table(args: argparse.Namespace) -> int:
    """Side-by-side Markdown table of several scored recipes (``NAME[:EVAL]`` items)."""
    rows = []
    for item in args.items:
        name, _, ev = item.partition(":")
        data = json.loads((Path(args.out) / name / (ev or "eval") / "crossval.json").read_text(encoding="utf-8"))
        summ = data["by_source"][args.source] if args.source else data["summary"]
        rows.append((item, summ))
    metrics = ("dice", "lesion_dice", "hd95_mm")
    print("| recipe | region | " + " | ".join(f"{m} mean ± SD cases (SD folds)" for m in metrics) + " | n |")
    print("|" + "---|" * (len(metrics) + 3))
    for item, summ in rows:
        for region, per in summ.items():
            cells = []
            for m in metrics:
                v = per[m]
                fmt = "{:.1f}" if m == "hd95_mm" else "{:.3f}"
                cells.append(f"{fmt.format(v['mean'])} ± {fmt.format(v['sd_cases'])} ({fmt.format(v['sd_folds'])})")
            print(f"| {item} | {region} | " + " | ".join(cells) + f" | {per['dice']['n']} |")
    return 0


def main(argv: List[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("splits")
    s.add_argument("--source", action="append", required=True, metavar="NAME=DIR")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--data-out", type=Path, help="also link every case into this one folder")
    s.add_argument("--k", type=int, default=5)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_splits)
    for name, func in (("run", cmd_run), ("score", cmd_score), ("postprocess", cmd_postprocess)):
        r = sub.add_parser(name)
        r.add_argument("--data", type=Path, required=True)
        r.add_argument("--splits", type=Path, required=True)
        r.add_argument("--out", type=Path, required=True)
        r.add_argument("--name", required=True)
        r.set_defaults(func=func)
    run = sub.choices["run"]
    run.add_argument("--config", type=Path)
    run.add_argument("--set", action="append", default=[])
    run.add_argument("--folds", help="comma-separated fold indices (default: all)")
    run.add_argument("--device", default="cpu")
    run.add_argument("--no-segment", action="store_true", help="train only (segment later with another run)")
    run.add_argument("--segment", nargs=argparse.REMAINDER, default=[], help="extra segment options (last)")
    score = sub.choices["score"]
    score.add_argument("--pred", type=Path, help="predictions (default OUT/NAME/pred)")
    score.add_argument("--eval-name", help="evaluation folder name (default eval)")
    v = sub.add_parser("variant")
    v.add_argument("--variant", type=Path, required=True, help="folder of case folders (same ids)")
    v.add_argument("--pred-name", required=True)
    v.add_argument("--splits", type=Path, required=True)
    v.add_argument("--out", type=Path, required=True)
    v.add_argument("--name", required=True)
    v.add_argument("--device", default="cpu")
    v.set_defaults(func=cmd_variant)
    t = sub.add_parser("table")
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--source", help="only the cases of this source (e.g. extra)")
    t.add_argument("items", nargs="+", help="NAME or NAME:EVAL_FOLDER")
    t.set_defaults(func=cmd_table)
    sub.choices["postprocess"].add_argument("--limits", default="0,0.1,0.25,0.5,1,2",
                                            help="ET volume limits (mL) to choose from (0 = off)")
    sub.choices["postprocess"].add_argument("--write", action="store_true",
                                            help="also write the post-processed predictions to NAME/pred-pp")
    args = p.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "VoxMMSDSegmentation"))
    sys.exit(main(sys.argv[1:]))
