"""``voxmmsd evaluate --pred DIR --ref DIR``: BraTS-style scores of predicted label maps."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

CONVENTION_CHOICES = ("auto", "brats2023", "legacy")


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "evaluate", help="score predicted label maps against references (Dice, HD95, lesion-wise, volumes)",
        description="Pair the label maps of --pred and --ref by case id and compute, per case and region "
                    "(WT, TC, ET; NETC, SNFH, RC where present), Dice, HD95 in mm, sensitivity, specificity, "
                    "volume error and the BraTS 2023 lesion-wise Dice and HD95. Writes OUT/per_case.csv, "
                    "OUT/summary.csv and OUT/evaluation.json, and prints the summary.")
    p.add_argument("--pred", type=Path, required=True,
                   help="predictions: <case>.nii.gz, <case>_seg.nii.gz or <case>/segmentation.nii.gz files")
    p.add_argument("--ref", type=Path, required=True,
                   help="references: the same layouts, BraTS case folders (<case>-seg), or nnU-Net labelsTr/")
    p.add_argument("--out", type=Path, help="output folder (default: PRED/evaluation)")
    p.add_argument("--labels-pred", default="auto", choices=CONVENTION_CHOICES,
                   help="label convention of the predictions (default: detected per file)")
    p.add_argument("--labels-ref", default="auto", choices=CONVENTION_CHOICES,
                   help="label convention of the references (default: detected per file)")
    p.add_argument("--missing", default="error", choices=("error", "skip", "worst"),
                   help="references without prediction: stop (default), leave out, or score as empty predictions")
    p.add_argument("--no-lesion-wise", action="store_true", help="skip the lesion-wise scores (faster)")
    p.add_argument("--no-subregions", action="store_true", help="score WT, TC, ET only")
    p.add_argument("--hd-method", default="pooled", choices=("pooled", "directed"),
                   help="HD95: pooled = the official BraTS evaluation (brats-evaluation/panoptica, default); "
                        "directed = the larger of the two directed 95th percentiles (MONAI, former default)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from voxmmsd import __version__
    from voxmmsd.io.atomic import ensure_writable_dir, write_json
    from voxmmsd.metrics.evaluate import EvaluationConfig, evaluate_folders
    from voxmmsd.metrics.report import CASE_COLUMNS, SUMMARY_COLUMNS, format_summary, summarise, write_csv

    config = EvaluationConfig(lesion_wise=not args.no_lesion_wise, subregions=not args.no_subregions,
                              missing=args.missing, hd_method=args.hd_method)
    out = ensure_writable_dir(args.out or Path(args.pred) / "evaluation")
    result = evaluate_folders(args.pred, args.ref, args.labels_pred, args.labels_ref, config)
    summary = summarise(result.rows)
    write_csv(out / "per_case.csv", result.rows, CASE_COLUMNS)
    write_csv(out / "summary.csv", summary, SUMMARY_COLUMNS)
    write_json(out / "evaluation.json", {
        "software": {"voxmmsd": __version__},
        "pred": str(args.pred), "ref": str(args.ref),
        "config": config.to_dict(),
        "label_conventions": {"pred": args.labels_pred, "ref": args.labels_ref, "used": result.conventions},
        "pairs": [{"case_id": p.case_id, "pred": str(p.pred), "ref": str(p.ref)} for p in result.pairing.pairs],
        "missing_predictions": list(result.pairing.missing_pred),
        "ignored_predictions": list(result.pairing.extra_pred),
        "warnings": result.warnings,
        "outputs": {"per_case": str(out / "per_case.csv"), "summary": str(out / "summary.csv")},
    })
    if args.json:
        json.dump({"cases": len(result.cases), "summary": summary, "warnings": result.warnings}, sys.stdout,
                  indent=2, default=str)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(f"{len(result.cases)} case(s) evaluated; per-case scores in {out / 'per_case.csv'}\n")
        sys.stdout.write(format_summary(summary) + "\n")
        for w in result.warnings:
            sys.stdout.write(f"warning: {w}\n")
    return 0
