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
whole-crop pass) into ``OUT/NAME/pred/``.

``--model M`` trains nothing and segments every held-out fold with the one model ``M``
(the baseline arm of a warm-start comparison). ``--exclude-seen-by M`` (or ``--exclude
ID,...``) keeps the cases ``M`` was trained on out of every held-out fold (they still train
the fold models): needed when a recipe starts from ``M``. ``score`` runs ``voxmmsd evaluate`` over the pooled
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
    """``folder`` holding exactly a link per case of ``ids`` (links left from an earlier selection are removed)."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.iterdir():
        if stale.is_symlink() and stale.name not in ids:
            stale.unlink()
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
    if args.together:
        from voxmmsd.experiment.crossval import keep_together

        folds = keep_together(folds, [g.split(",") for g in args.together])
    write_splits(args.out, folds, sources, args.seed)
    if args.data_out:
        link_cases(dirs, sorted(dirs), Path(args.data_out))
    for i, f in enumerate(folds):
        print(f"fold {i}: {', '.join(f)}")
    return 0


def excluded(args: argparse.Namespace) -> List[str]:
    """The case ids kept out of the held-out folds (``--exclude``, ``--exclude-seen-by``)."""
    from voxmmsd.experiment.crossval import cases_seen_by

    ids = [c.strip() for c in (args.exclude or "").split(",") if c.strip()]
    if args.exclude_seen_by:
        ids += cases_seen_by(args.exclude_seen_by)
    return sorted(set(ids))


def cmd_run(args: argparse.Namespace) -> int:
    from voxmmsd.experiment.crossval import read_splits, restrict_folds, training_ids

    folds = read_splits(args.splits)
    held_folds = restrict_folds(folds, excluded(args))
    dirs = case_folders(args.data)
    exp = Path(args.out) / args.name
    exp.mkdir(parents=True, exist_ok=True)
    which = [int(v) for v in args.folds.split(",")] if args.folds else list(range(len(folds)))
    timings = json.loads((exp / "timings.json").read_text()) if (exp / "timings.json").exists() else {}
    for k in which:
        if not held_folds[k]:
            log.info("fold %d: every case is excluded; nothing to hold out", k)
            continue
        run = exp / f"fold{k}"
        model = Path(args.model) if args.model else run / "model"
        if not args.model and not (model / "model.json").exists():
            cmd = [VOXMMSD, "-q", "finetune", "--data", str(args.data), "--out", str(run), "--device", args.device,
                   "--train", ",".join(training_ids(folds, k)), "--val", "0"]
            if args.config:
                cmd += ["--config", str(args.config)]
            for s in args.set:
                cmd += ["--set", s]
            timings[f"fold{k}_train_s"] = round(_sh(cmd, exp / "log.txt"), 1)
        held = link_cases(dirs, held_folds[k], exp / "inputs" / f"fold{k}")
        if args.no_segment:
            continue
        seg = [VOXMMSD, "-q", "segment", "--batch", str(held), "--out", str(exp / "pred"), "--model",
               str(model), "--device", args.device, "--progress", "none", "--no-qc"] + args.segment
        timings[f"fold{k}_segment_s"] = round(_sh(seg, exp / "log.txt"), 1)
        (exp / "timings.json").write_text(json.dumps(timings, indent=1))
    return 0


def cmd_variant(args: argparse.Namespace) -> int:
    """Segment a variant of the cases (e.g. one sequence left out) with each case's out-of-fold model."""
    from voxmmsd.experiment.crossval import read_splits, restrict_folds

    folds = restrict_folds(read_splits(args.splits), excluded(args))
    exp = Path(args.out) / args.name
    present = {p.name: p for p in Path(args.variant).iterdir() if p.is_dir()}
    for k, fold in enumerate(folds):
        ids = [c for c in fold if c in present]
        if not ids:
            continue
        held = link_cases(present, ids, exp / f"inputs-{args.pred_name}" / f"fold{k}")
        model = Path(args.model) if args.model else exp / f"fold{k}" / "model"
        _sh([VOXMMSD, "-q", "segment", "--batch", str(held), "--out", str(exp / args.pred_name), "--model",
             str(model), "--device", args.device, "--progress", "none", "--no-qc"],
            exp / "log.txt")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from voxmmsd.experiment.crossval import format_table, read_splits, restrict_folds, summarise_folds
    from voxmmsd.metrics.report import read_csv

    drop = excluded(args)
    folds = [f for f in restrict_folds(read_splits(args.splits), drop) if f]
    exp = Path(args.out) / args.name
    exp.mkdir(parents=True, exist_ok=True)
    pred = Path(args.pred) if args.pred else exp / "pred"
    ev = exp / (args.eval_name or "eval")
    ref = Path(args.data)
    if drop:  # score exactly the held-out cases that remain: an excluded case is not a missing prediction
        dirs = case_folders(args.data)
        ref = link_cases(dirs, sorted(c for f in folds for c in f), exp / f"ref-{ev.name}")
    _sh([VOXMMSD, "-q", "evaluate", "--pred", str(pred), "--ref", str(ref), "--out", str(ev),
         "--missing", "worst", "--no-subregions"], exp / "log.txt")
    rows = read_csv(ev / "per_case.csv")
    summary = summarise_folds(rows, folds)
    sources = json.loads(Path(args.splits).read_text(encoding="utf-8")).get("sources", {})
    by_source = {}
    for src in sorted(set(sources.values())):
        sub = [[c for c in f if sources.get(c) == src] for f in folds]
        by_source[src] = summarise_folds(rows, [f for f in sub if f])
    (ev / "crossval.json").write_text(json.dumps({"name": args.name, "pred": str(pred), "summary": summary,
                                                  "by_source": by_source, "excluded": drop}, indent=1))
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
    """Choose a post-processing limit per fold on the other folds' out-of-fold predictions, apply it.

    ``--kind et``: a predicted ET under the limit (mL) becomes NETC, chosen on the mean TC and
    ET Dice. ``--kind components``: tumour components under the limit are removed, chosen on
    the mean lesion-wise Dice of WT, TC and ET (the BraTS 2023 ranking metric, the one small
    false-positive islands hurt). Limit 0 is "off".
    """
    import numpy as np
    import SimpleITK as sitk
    from voxmmsd.experiment.crossval import choose_nested, read_splits, restrict_folds
    from voxmmsd.infer.postprocess import (
        min_component_voxels,
        remove_small_components,
        small_et_components_to_netc,
        small_et_to_netc,
    )
    from voxmmsd.io.discovery import find_case
    from voxmmsd.metrics.evaluate import EvaluationConfig, evaluate_case

    drop = excluded(args)
    folds = [f for f in restrict_folds(read_splits(args.splits), drop) if f]
    regions_only = EvaluationConfig(subregions=False)  # WT, TC, ET only: the single labels are not needed
    dirs = case_folders(args.data)
    exp = Path(args.out) / args.name
    limits = [float(v) for v in args.limits.split(",")]
    def apply(label, n):  # the product's own rules (voxmmsd.infer.predictor)
        if args.kind == "et":
            return small_et_to_netc(label, n)
        if args.kind == "et-components":
            return small_et_components_to_netc(label, n)
        return remove_small_components(label, n, keep_largest=True)

    regions = ("WT", "TC", "ET")
    scores: Dict[str, Dict[float, float]] = {}
    result: Dict[str, Dict[float, Dict[str, Dict[str, float]]]] = {}
    cache = {}
    for c in sorted(c for f in folds for c in f):
        img, pred = _read_label((Path(args.pred) if args.pred else exp / "pred") / c / "segmentation.nii.gz")
        _, ref = _read_label(find_case(dirs[c]).label)
        voxel_ml = float(np.prod(img.GetSpacing())) / 1000.0
        scores[c], result[c] = {}, {}
        for lim in limits:
            out, _ = apply(pred, min_component_voxels(lim, voxel_ml))
            ev = evaluate_case(out, ref, img.GetSpacing(), regions_only)
            result[c][lim] = {r: {"dice": ev[r]["dice"], "lesion_dice": ev[r]["lesion_dice"]} for r in regions}
            scores[c][lim] = (float(np.mean([ev[r]["dice"] for r in ("TC", "ET")])) if args.kind == "et"
                              else float(np.mean([ev[r]["lesion_dice"] for r in regions])))
        cache[c] = (img, pred, voxel_ml)
        log.info("%s: %s", c, {lim: round(v, 3) for lim, v in scores[c].items()})
    chosen = choose_nested(scores, folds)
    dest = exp / f"pred-pp-{args.kind}"
    applied = {}
    for k, f in enumerate(folds):
        for c in f:
            applied[c] = result[c][chosen[k]]
            if not args.write:
                continue
            img, pred, voxel_ml = cache[c]
            out, _ = apply(pred, min_component_voxels(chosen[k], voxel_ml))
            (dest / c).mkdir(parents=True, exist_ok=True)
            o = sitk.GetImageFromArray(out)
            o.CopyInformation(img)
            sitk.WriteImage(o, str(dest / c / "segmentation.nii.gz"), True)

    def stats(r: str, m: str) -> Dict[str, object]:
        vals = [applied[c][r][m] for c in applied]
        off = float(np.mean([result[c][limits[0]][r][m] for c in applied])) if limits[0] == 0.0 else None
        return {"applied": float(np.mean(vals)), "sd_cases": float(np.std(vals, ddof=1)), "without": off}

    nested = {r: {m: stats(r, m) for m in ("dice", "lesion_dice")} for r in regions}
    record = {"kind": args.kind, "limits_ml": limits, "chosen_ml_per_fold": chosen, "nested": nested,
              "criterion": "mean TC, ET Dice" if args.kind == "et" else "mean WT, TC, ET lesion-wise Dice",
              "per_case_applied": applied, "excluded": drop,
              "mean_criterion_by_limit": {str(lim): float(np.mean([scores[c][lim] for c in scores]))
                                          for lim in limits}}
    name = "postprocess.json" if args.kind == "et" else f"postprocess-{args.kind}.json"
    (exp / name).write_text(json.dumps(record, indent=1))
    print(json.dumps({k: v for k, v in record.items() if k != "per_case_applied"}, indent=1))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Paired comparison of two scored recipes (``NAME[:EVAL]``), B minus A, over the cases both scored."""
    from voxmmsd.experiment.crossval import paired_difference
    from voxmmsd.metrics.report import read_csv

    def rows(item: str):
        name, _, ev = item.partition(":")
        return read_csv(Path(args.out) / name / (ev or "eval") / "per_case.csv")

    sources = json.loads(Path(args.splits).read_text(encoding="utf-8")).get("sources", {}) if args.splits else {}
    a, b = rows(args.a), rows(args.b)
    if args.source:
        a = [r for r in a if sources.get(r.get("case_id")) == args.source]
        b = [r for r in b if sources.get(r.get("case_id")) == args.source]
    record = {m: paired_difference(a, b, metric=m) for m in ("dice", "lesion_dice", "hd95_mm")}
    print(f"{args.b} minus {args.a}" + (f" ({args.source} cases)" if args.source else ""))
    print("| metric | region | n | A | B | B - A (SD) | B better / A better | Wilcoxon p |")
    print("|---|---|---|---|---|---|---|---|")
    for m, per in record.items():
        for region, r in per.items():
            print(f"| {m} | {region} | {r['n']} | {r['mean_a']:.3f} | {r['mean_b']:.3f} | {r['mean_diff']:+.3f} "
                  f"({r['sd_diff']:.3f}) | {r['b_better']} / {r['a_better']} | {r['wilcoxon_p']:.3g} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"a": args.a, "b": args.b, "source": args.source, **record}, indent=1))
    return 0


def cmd_uncertainty(args: argparse.Namespace) -> int:
    """Does the report's uncertainty rank the cases? Spearman rho against each case's mean Dice, and the warnings."""
    import numpy as np
    from scipy.stats import spearmanr
    from voxmmsd.metrics.report import read_csv

    exp = Path(args.out) / args.name
    rows = read_csv(exp / (args.eval_name or "eval") / "per_case.csv")
    pred = Path(args.pred) if args.pred else exp / "pred"
    dice: Dict[str, List[float]] = {}
    for r in rows:
        if r.get("region") in ("WT", "TC", "ET"):
            dice.setdefault(str(r["case_id"]), []).append(float(r["dice"]))
    cases, unsure, score, tta, warned = [], [], [], [], 0
    for c in sorted(dice):
        report = json.loads((pred / c / "report.json").read_text(encoding="utf-8"))
        u = report.get("uncertainty") or {}
        cases.append(c)
        unsure.append(float(u.get("low_confidence_fraction", float("nan"))))
        tta.append(float(u["tta_disagreement"]) if u.get("tta_disagreement") is not None else float("nan"))
        score.append(float(np.mean(dice[c])))
        warned += any(isinstance(w, dict) and w.get("kind") == "uncertainty" for w in report.get("warnings", []))
    record = {"name": args.name, "cases": len(cases), "warned": warned,
              "low_confidence_fraction": {"min": float(np.nanmin(unsure)), "max": float(np.nanmax(unsure))}}
    for key, values in (("low_confidence_fraction", unsure), ("tta_disagreement", tta)):
        ok = np.isfinite(values)
        if ok.sum() >= 3:
            rho, p = spearmanr(np.asarray(values)[ok], np.asarray(score)[ok])
            record[f"spearman_{key}_vs_mean_dice"] = {"rho": float(rho), "p": float(p), "n": int(ok.sum())}
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


def cmd_protocol(args: argparse.Namespace) -> int:
    """The model protocol's three tables and the default-model rule (voxmmsd.experiment.protocol).

    Reads OUT/ARM/EVAL/per_case.csv: ``eval`` (clean 5-fold), ``eval-SHIFT`` per shift and, for the
    candidate, OUT/loso/eval (leave-one-source-out). A baseline ``NAME=MODEL`` is scored only on the
    cases MODEL never trained on, and the candidate's numbers are paired on exactly those cases.
    """
    from voxmmsd.experiment.crossval import cases_seen_by
    from voxmmsd.experiment.protocol import by_group, decide, region_summary, shift_table
    from voxmmsd.metrics.report import read_csv

    sources = json.loads(Path(args.splits).read_text(encoding="utf-8"))["sources"]
    shifts = [x for x in args.shifts.split(",") if x]

    def rows(arm: str, ev: str) -> List[dict]:
        path = Path(args.out) / arm / ev / "per_case.csv"
        return [r for r in read_csv(path) if r.get("status", "ok") == "ok"] if path.exists() else []

    def arm_tables(arm: str, cases: List[str]) -> dict:
        clean = rows(arm, "eval")
        shifted = {sh: rows(arm, f"eval-{sh}") for sh in shifts}
        return {"clean": region_summary(clean, cases), "sources": by_group(clean, sources, cases),
                "shift": shift_table(clean, {k: v for k, v in shifted.items() if v}, cases), "cases": len(cases)}

    everything = sorted(sources)
    result = {"candidate": args.candidate, "cases": len(everything),
              args.candidate: arm_tables(args.candidate, everything)}
    loso = rows("loso", "eval")
    if loso:
        result["loso"] = {"clean": region_summary(loso, everything), "sources": by_group(loso, sources)}
    baselines = {}
    for item in args.baseline:
        name, _, model = item.partition("=")
        unseen = sorted(set(everything) - set(cases_seen_by(Path(model))))
        tables = arm_tables(name, unseen)
        tables["paired"] = arm_tables(args.candidate, unseen)
        tables["unseen"] = unseen
        baselines[name] = tables
        result[name] = tables
    result["rule"] = decide(result[args.candidate], baselines)
    out = Path(args.out) / "protocol.json"
    out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    log.info("protocol: %s", out)
    print(json.dumps(result["rule"], indent=1))
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
    s.add_argument("--together", action="append", metavar="ID,ID",
                   help="cases that must share a fold (e.g. one patient in two BraTS years); repeatable")
    s.set_defaults(func=cmd_splits)
    for name, func in (("run", cmd_run), ("score", cmd_score), ("postprocess", cmd_postprocess)):
        r = sub.add_parser(name)
        r.add_argument("--data", type=Path, required=True)
        r.add_argument("--splits", type=Path, required=True)
        r.add_argument("--out", type=Path, required=True)
        r.add_argument("--name", required=True)
        r.set_defaults(func=func)
    for name in ("run", "score", "postprocess"):
        sub.choices[name].add_argument("--exclude", help="comma-separated case ids never held out (nor scored)")
        sub.choices[name].add_argument("--exclude-seen-by", type=Path, metavar="MODEL",
                                       help="also exclude the cases this model package was trained on")
    run = sub.choices["run"]
    run.add_argument("--model", type=Path, help="segment every held-out fold with this model (no training)")
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
    v.add_argument("--model", type=Path, help="segment every fold with this model (the baseline arm)")
    v.add_argument("--exclude", help="comma-separated case ids never held out")
    v.add_argument("--exclude-seen-by", type=Path, metavar="MODEL", help="also exclude the cases this model saw")
    v.set_defaults(func=cmd_variant)
    u = sub.add_parser("uncertainty")
    u.add_argument("--out", type=Path, required=True)
    u.add_argument("--name", required=True)
    u.add_argument("--pred", type=Path, help="predictions with report.json (default OUT/NAME/pred)")
    u.add_argument("--eval-name", help="evaluation folder name (default eval)")
    u.set_defaults(func=cmd_uncertainty)
    c = sub.add_parser("compare")
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--splits", type=Path, help="split file (needed with --source)")
    c.add_argument("--source", help="only the cases of this source (e.g. extra)")
    c.add_argument("--json", type=Path, help="also write the comparison here")
    c.add_argument("a", help="NAME or NAME:EVAL_FOLDER (the baseline)")
    c.add_argument("b", help="NAME or NAME:EVAL_FOLDER (the candidate)")
    c.set_defaults(func=cmd_compare)
    t = sub.add_parser("table")
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--source", help="only the cases of this source (e.g. extra)")
    t.add_argument("items", nargs="+", help="NAME or NAME:EVAL_FOLDER")
    t.set_defaults(func=cmd_table)
    pr = sub.add_parser("protocol")
    pr.add_argument("--out", type=Path, required=True)
    pr.add_argument("--splits", type=Path, required=True)
    pr.add_argument("--candidate", required=True, help="the candidate arm's NAME (its fold models' predictions)")
    pr.add_argument("--baseline", action="append", default=[], metavar="NAME=MODEL",
                    help="a baseline arm and its model package (scored on the cases it never trained on)")
    pr.add_argument("--shifts", default="thick5mm,bias,zscore,uint8,ras")
    pr.set_defaults(func=cmd_protocol)
    sub.choices["postprocess"].add_argument("--limits", default="0,0.1,0.25,0.5,1,2",
                                            help="ET volume limits (mL) to choose from (0 = off)")
    sub.choices["postprocess"].add_argument("--write", action="store_true",
                                            help="also write the post-processed predictions to NAME/pred-pp-KIND")
    sub.choices["postprocess"].add_argument("--kind", choices=("et", "components", "et-components"), default="et",
                                            help="et: a small ET -> NETC; components: remove small components; "
                                                 "et-components: small ET components -> NETC")
    sub.choices["postprocess"].add_argument("--pred", type=Path,
                                            help="predictions to start from (default OUT/NAME/pred), e.g. "
                                                 "another kind's pred-pp-KIND")
    args = p.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "VoxMMSDSegmentation"))
    sys.exit(main(sys.argv[1:]))
