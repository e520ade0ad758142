"""``voxmmsd experiment crossval``: k-fold cross-validation of a recipe or a model through the product's own path.

Where the model card's numbers and the post-processing defaults come from (docs/model-protocol.md,
docs/finetuning.md). The logic lives in :mod:`voxmmsd.experiment` (``crossval``, ``cv_*``); this
module only reads the arguments and prints.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

DESCRIPTION = (
    "Cross-validate a fine-tuning recipe (or score a fixed model) on saved folds, through the product's own "
    "commands run in this process: `splits` fixes the folds; `run` trains a model per fold on the other folds "
    "(voxmmsd finetune, no validation cases) and segments the held-out cases (voxmmsd segment --batch) into "
    "OUT/NAME/pred; `score` evaluates the pooled out-of-fold predictions (voxmmsd evaluate) into "
    "OUT/NAME/eval/crossval.json; `postprocess` chooses a post-processing limit per fold on the other folds; "
    "`variant`, `compare`, `table`, `uncertainty` and `protocol` (the model protocol's tables and rule) "
    "work on those folders.")


def add_crossval_parser(kinds: Any) -> None:
    """The ``crossval`` experiment and its sub-commands, under ``voxmmsd experiment``."""
    p = kinds.add_parser("crossval", help="k-fold cross-validation through the product's own path",
                         description=DESCRIPTION)
    sub = p.add_subparsers(dest="crossval", metavar="STEP")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    s = sub.add_parser("splits", help="make and save the folds (stratified by source)",
                       description="Find the case folders under each source, deal them into K folds stratified by "
                                   "source (seeded) and write the split file; optionally link every case into one "
                                   "data folder.")
    s.add_argument("--source", action="append", required=True, metavar="NAME=DIR",
                   help="a source of cases (every folder holding .nii.gz files below DIR); repeatable, a NAME may "
                        "be given for several folders")
    s.add_argument("--out", type=Path, required=True, help="the split file to write (JSON)")
    s.add_argument("--data-out", type=Path, help="also link every case into this one folder")
    s.add_argument("--k", type=int, default=5, help="number of folds (default 5)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--together", action="append", metavar="ID,ID",
                   help="cases that must share a fold (e.g. one patient in two BraTS years); repeatable")
    s.set_defaults(func=cmd_splits)

    def arm(q: argparse.ArgumentParser, data: bool = True) -> None:
        if data:
            q.add_argument("--data", type=Path, required=True, help="the folder of every case (splits --data-out)")
        q.add_argument("--splits", type=Path, required=True, help="the split file")
        q.add_argument("--out", type=Path, required=True, help="the cross-validation folder (one folder per arm)")
        q.add_argument("--name", required=True, help="the arm: its folder OUT/NAME")
        q.add_argument("--exclude", help="comma-separated case ids never held out (nor scored)")
        q.add_argument("--exclude-seen-by", type=Path, metavar="MODEL",
                       help="also exclude the cases this model package was trained on")

    r = sub.add_parser("run", help="train a model per fold and segment its held-out cases",
                       description="Train one model per fold on the other folds (kept when run again), then segment "
                                   "the held-out cases into OUT/NAME/pred; with --model, segment every fold with "
                                   "that model and train nothing.")
    arm(r)
    r.add_argument("--model", type=Path, help="segment every held-out fold with this model (no training)")
    r.add_argument("--config", type=Path, metavar="FILE.yaml", help="fine-tuning settings of every fold model")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a fine-tuning setting")
    r.add_argument("--folds", help="comma-separated fold indices (default: all)")
    r.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    r.add_argument("--no-segment", action="store_true", help="train only (segment later with another run)")
    r.add_argument("--segment", nargs=argparse.REMAINDER, default=[],
                   help="extra `voxmmsd segment` options, e.g. --segment --tta (last)")
    r.set_defaults(func=cmd_run)

    v = sub.add_parser("variant", help="segment a variant of the cases with each case's out-of-fold model",
                       description="Segment a folder of case variants (the same ids, e.g. a sequence left out) "
                                   "with each case's out-of-fold model into OUT/NAME/PRED_NAME.")
    arm(v, data=False)
    v.add_argument("--variant", type=Path, required=True, help="folder of case folders (same ids)")
    v.add_argument("--pred-name", required=True, help="the predictions' folder under OUT/NAME")
    v.add_argument("--device", default="cpu")
    v.add_argument("--model", type=Path, help="segment every fold with this model (the baseline arm)")
    v.set_defaults(func=cmd_variant)

    sc = sub.add_parser("score", help="evaluate the out-of-fold predictions: OUT/NAME/EVAL/crossval.json",
                        description="Run voxmmsd evaluate on the pooled out-of-fold predictions (a missing one "
                                    "scores as empty) and summarise per region: mean ± SD over cases and over fold "
                                    "means, overall and per source.")
    arm(sc)
    sc.add_argument("--pred", type=Path, help="predictions (default OUT/NAME/pred)")
    sc.add_argument("--eval-name", help="evaluation folder name (default eval)")
    sc.set_defaults(func=cmd_score)

    pp = sub.add_parser("postprocess", help="choose a post-processing limit per fold, nested",
                        description="For each limit, run the engine's post-processing (the predictor's own step) "
                                    "with one rule on over every held-out prediction and score it; each fold takes "
                                    "the limit best on the other folds. Writes OUT/NAME/postprocess[-KIND].json.")
    arm(pp)
    pp.add_argument("--kind", choices=("et", "components", "et-components"), default="et",
                    help="et: a small whole ET -> NETC (min_et_ml); components: remove small tumour components "
                         "(min_component_ml); et-components: small ET components -> NETC (min_et_component_ml)")
    pp.add_argument("--limits", default="0,0.1,0.25,0.5,1,2", help="limits (mL) to choose from (0 = off)")
    pp.add_argument("--write", action="store_true",
                    help="also write the post-processed predictions to OUT/NAME/pred-pp-KIND")
    pp.add_argument("--pred", type=Path,
                    help="predictions to start from (default OUT/NAME/pred), e.g. another kind's pred-pp-KIND")
    pp.set_defaults(func=cmd_postprocess)

    c = sub.add_parser("compare", help="paired comparison of two scored arms (B minus A, Wilcoxon)")
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--splits", type=Path, help="split file (needed with --source)")
    c.add_argument("--source", help="only the cases of this source (e.g. extra)")
    c.add_argument("--json", type=Path, help="also write the comparison here")
    c.add_argument("a", help="NAME or NAME:EVAL_FOLDER (the baseline)")
    c.add_argument("b", help="NAME or NAME:EVAL_FOLDER (the candidate)")
    c.set_defaults(func=cmd_compare)

    t = sub.add_parser("table", help="side-by-side Markdown table of scored arms")
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--source", help="only the cases of this source (e.g. extra)")
    t.add_argument("items", nargs="+", help="NAME or NAME:EVAL_FOLDER")
    t.set_defaults(func=cmd_table)

    u = sub.add_parser("uncertainty", help="does the report's uncertainty rank the cases? (Spearman)")
    u.add_argument("--out", type=Path, required=True)
    u.add_argument("--name", required=True)
    u.add_argument("--pred", type=Path, help="predictions with report.json (default OUT/NAME/pred)")
    u.add_argument("--eval-name", help="evaluation folder name (default eval)")
    u.set_defaults(func=cmd_uncertainty)

    pr = sub.add_parser("protocol", help="the model protocol's tables and the default-model rule",
                        description="Read OUT/ARM/eval*/per_case.csv of the candidate, OUT/loso and each baseline "
                                    "and write OUT/protocol.json and OUT/protocol.md (docs/model-protocol.md).")
    pr.add_argument("--out", type=Path, required=True)
    pr.add_argument("--splits", type=Path, required=True)
    pr.add_argument("--candidate", required=True, help="the candidate arm's NAME (its fold models' predictions)")
    pr.add_argument("--baseline", action="append", default=[], metavar="NAME=MODEL",
                    help="a baseline arm and its model package (scored on the cases it never trained on)")
    pr.add_argument("--shifts", default="thick5mm,bias,zscore,uint8,ras")
    pr.set_defaults(func=cmd_protocol)


def _arm(args: argparse.Namespace) -> Any:
    from voxmmsd.experiment.cv_data import excluded_ids
    from voxmmsd.experiment.cv_run import Arm

    return Arm(getattr(args, "data", None) or Path(), args.splits, args.out, args.name,
               tuple(excluded_ids(args.exclude, args.exclude_seen_by)))


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")


def cmd_splits(args: argparse.Namespace) -> int:
    from voxmmsd.experiment.crossval import keep_together, make_folds, write_splits
    from voxmmsd.experiment.cv_data import link_cases, parse_sources, source_cases

    sources, dirs = source_cases(parse_sources(args.source))
    folds = make_folds(sources, args.k, args.seed)
    if args.together:
        folds = keep_together(folds, [g.split(",") for g in args.together])
    write_splits(args.out, folds, sources, args.seed)
    if args.data_out:
        link_cases(dirs, sorted(dirs), Path(args.data_out))
    for i, f in enumerate(folds):
        _say(f"fold {i}: {', '.join(f)}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from voxmmsd.experiment.cv_run import RunOptions, parse_folds, run_folds

    options = RunOptions(args.model, args.config, tuple(args.set), parse_folds(args.folds), args.device,
                         not args.no_segment, tuple(args.segment))
    timings = run_folds(_arm(args), options)
    _say(f"{args.name}: {json.dumps(timings)}")
    return 0


def cmd_variant(args: argparse.Namespace) -> int:
    from voxmmsd.experiment.cv_run import segment_variant

    done = segment_variant(_arm(args), args.variant, args.pred_name, args.model, args.device)
    _say(f"{len(done)} case(s) segmented -> {args.out / args.name / args.pred_name}")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from voxmmsd.experiment.cv_score import score_arm, score_text

    _say(score_text(score_arm(_arm(args), args.pred, args.eval_name)))
    return 0


def cmd_postprocess(args: argparse.Namespace) -> int:
    from voxmmsd.errors import InputError
    from voxmmsd.experiment.cv_postprocess import choose_limits, record_name
    from voxmmsd.io.atomic import write_text

    try:
        limits = [float(v) for v in args.limits.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"--limits {args.limits!r}: give comma-separated numbers of mL, e.g. 0,1,2.") from None
    arm = _arm(args)
    record = choose_limits(arm, args.kind, limits, args.pred, args.write)
    write_text(arm.folder / record_name(args.kind), json.dumps(record, indent=1))
    _say(json.dumps({k: v for k, v in record.items() if k != "per_case_applied"}, indent=1))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from voxmmsd.errors import InputError
    from voxmmsd.experiment.cv_score import compare_arms, comparison_text, split_sources
    from voxmmsd.io.atomic import write_text

    if args.source and not args.splits:
        raise InputError("--source needs --splits (the split file records each case's source).")
    sources = split_sources(args.splits) if args.splits else {}
    record = compare_arms(args.out, args.a, args.b, sources, args.source)
    _say(comparison_text(args.a, args.b, record, args.source))
    if args.json:
        write_text(Path(args.json), json.dumps({"a": args.a, "b": args.b, "source": args.source, **record}, indent=1))
    return 0


def cmd_table(args: argparse.Namespace) -> int:
    from voxmmsd.experiment.cv_score import side_by_side

    _say(side_by_side(args.out, args.items, args.source))
    return 0


def cmd_uncertainty(args: argparse.Namespace) -> int:
    from voxmmsd.experiment.cv_uncertainty import uncertainty_ranking
    from voxmmsd.metrics.report import read_csv

    exp = Path(args.out) / args.name
    rows = read_csv(exp / (args.eval_name or "eval") / "per_case.csv")
    _say(json.dumps(uncertainty_ranking(args.name, rows, Path(args.pred) if args.pred else exp / "pred"), indent=1))
    return 0


def cmd_protocol(args: argparse.Namespace) -> int:
    from voxmmsd.errors import InputError
    from voxmmsd.experiment.cv_protocol import protocol_result, write_protocol

    baselines = []
    for item in args.baseline:
        name, sep, model = item.partition("=")
        if not sep or not name or not model:
            raise InputError(f"--baseline {item!r}: give NAME=MODEL (the arm and its model package folder).")
        baselines.append((name, Path(model)))
    result = protocol_result(args.out, args.splits, args.candidate, baselines,
                             [x for x in args.shifts.split(",") if x])
    js, md = write_protocol(args.out, result)
    _say(json.dumps(result["rule"], indent=1))
    _say(f"protocol: {js} and {md}")
    return 0
