"""``voxmmsd experiment``: ``label-efficiency`` (Dice against the number of labelled cases, scratch vs
pre-trained) and ``crossval`` (k-fold cross-validation, :mod:`voxmmsd.cli.crossval`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser("experiment", help="research experiments (label-efficiency, crossval)",
                       description="Experiments to run on a local cohort.")
    kinds = p.add_subparsers(dest="experiment", metavar="EXPERIMENT")
    le = kinds.add_parser(
        "label-efficiency", help="fine-tune from scratch and from pre-trained weights with N labelled cases",
        description="For each N, fine-tune on the same N labelled cases from a random network and from the "
                    "pre-trained weights (--init), score both on held-out cases (Dice, HD95 on the original grid) "
                    "and write OUT/results.csv, OUT/summary.csv and OUT/label_efficiency.png. Running the same "
                    "command again keeps finished runs.")
    le.add_argument("--data", type=Path, required=True, help="labelled data set folder")
    le.add_argument("--out", type=Path, required=True, help="experiment folder")
    le.add_argument("--init", type=Path, help="pre-training run folder or weights (for the pretrained arm)")
    le.add_argument("--sizes", default="2,4,8", help="numbers of labelled training cases (default 2,4,8)")
    le.add_argument("--test", default="0.25", help="held-out cases: number, fraction or ids (default 0.25)")
    le.add_argument("--val", type=int, default=0, help="validation cases per run (default 0: last weights)")
    le.add_argument("--repeats", type=int, default=1, help="repeats with other case draws (default 1)")
    le.add_argument("--seed", type=int, default=0)
    le.add_argument("--arms", default="scratch,pretrained", help="scratch, pretrained or both (default)")
    le.add_argument("--max-iters", type=int, metavar="N", help="iterations per run (sets train.iterations)")
    le.add_argument("--device", default="auto", help="auto | cpu | cuda")
    le.add_argument("--config", type=Path, metavar="FILE.yaml", help="fine-tuning settings for every run")
    le.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="fine-tuning setting for every run, e.g. --set network.channels=[8,16,32,64,128]")
    le.set_defaults(func=run_label_efficiency)
    from voxmmsd.cli.crossval import add_crossval_parser

    add_crossval_parser(kinds)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_label_efficiency(args: argparse.Namespace) -> int:
    from voxmmsd.cli.finetune import _selection
    from voxmmsd.experiment.label_efficiency import LabelEfficiencyConfig, label_efficiency, parse_sizes, summary_table
    from voxmmsd.finetune.config import load_config, merge

    cfg = load_config(args.config, args.set)
    if args.max_iters is not None:
        cfg = load_config(None, (), merge(cfg.to_dict(), {"train": {"iterations": args.max_iters}}))
    test = _selection(args.test)
    exp = LabelEfficiencyConfig(parse_sizes(args.sizes), tuple(test) if isinstance(test, list) else test, args.val,
                                args.repeats, args.seed, tuple(a.strip() for a in args.arms.split(",") if a.strip()))
    summary = label_efficiency(args.data, args.out, cfg, exp, args.init, args.device)
    if summary:
        print(summary_table(summary))
        results = args.out / "results.csv"
        if results.is_file():
            import csv

            from voxmmsd.experiment.label_efficiency import paired_table
            from voxmmsd.experiment.report import paired

            with results.open(encoding="utf-8") as f:
                pairs = paired(list(csv.DictReader(f)))
            if pairs:
                print("pre-trained - scratch, mean Dice of WT, TC, ET (mean ± SD over repeats; p: paired t-test "
                      "over repeats x test cases)")
                print(paired_table(pairs))
        print(f"Table: {args.out / 'summary.csv'}  Plot: {args.out / 'label_efficiency.png'}")
    return 0
