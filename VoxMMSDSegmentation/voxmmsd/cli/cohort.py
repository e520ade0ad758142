"""``voxmmsd cohort add | list | remove | finetune | install | pretrain``: learn from reviewed segmentations."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

CHOICES = ("auto", "on", "off")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("cohort", help="a local cohort of reviewed segmentations: add cases, fine-tune, compare, "
                                      "install",
                       description="Collect reviewed segmentations into a cohort folder (BraTS 2023 names and "
                                   "labels, T1c grid, case.json with the proposing model and the edits), "
                                   "fine-tune a model on it with cross-validation against the model it started "
                                   "from, and install the result as a new model version when it is not worse. "
                                   "See docs/finetuning.md.")
    c = p.add_subparsers(dest="cohort_command", metavar="ACTION", required=True)

    a = c.add_parser("add", help="add a reviewed case (four sequences and its segmentation)",
                     description="Add one case: the four sequences (read as 'voxmmsd segment' reads them: "
                                 "registration onto T1c, brain extraction where needed) and the reviewed "
                                 "segmentation on the T1c grid. The case gets a generated id. The cohort folder "
                                 "is created when it is new or empty.")
    a.add_argument("cohort", type=Path, help="cohort folder")
    a.add_argument("case", type=Path, nargs="?", help="case folder (any naming 'voxmmsd inspect' recognises)")
    for key, name in (("t1n", "T1 native"), ("t1c", "T1 with contrast"), ("t2w", "T2-weighted"), ("t2f", "FLAIR")):
        a.add_argument(f"--{key}", type=Path, help=f"{name} image (overrides the case folder's)")
    a.add_argument("--seg", type=Path, help="the reviewed segmentation (default: the case folder's seg file)")
    a.add_argument("--proposal", type=Path, help="the model's unedited segmentation (for the edit statistics)")
    a.add_argument("--proposed-by", metavar="ID@VERSION", help="the model that proposed the segmentation")
    a.add_argument("--labels", default="auto", choices=("auto", "brats2023", "legacy"),
                   help="label convention of --seg (default: detected)")
    a.add_argument("--proposal-labels", default="auto", choices=("auto", "brats2023", "legacy"),
                   help="label convention of --proposal (default: detected)")
    a.add_argument("--register", default="auto", choices=CHOICES, help="co-registration onto T1c (default auto)")
    a.add_argument("--skull-strip", default="auto", choices=CHOICES, help="brain extraction (default auto)")
    a.add_argument("--source", default="command line", help="where the case was reviewed (recorded)")
    a.add_argument("--device", default="auto", help="for brain extraction: auto, cpu or cuda")
    a.add_argument("--progress", default="none", choices=("none", "json"), help="JSON events on stdout")
    a.set_defaults(func=run_add)

    ls = c.add_parser("list", help="the cases: date, proposing model, edits, volumes")
    ls.add_argument("cohort", type=Path)
    ls.add_argument("--json", action="store_true", help="every case.json as a JSON list")
    ls.set_defaults(func=run_list)

    r = c.add_parser("remove", help="delete cases from the cohort")
    r.add_argument("cohort", type=Path)
    r.add_argument("case_ids", nargs="+", metavar="CASE_ID")
    r.set_defaults(func=run_remove)

    f = c.add_parser("finetune", help="fine-tune a model on the cohort and compare it with the starting model",
                     description="Cross-validate on the cohort (each fold's model fine-tuned from --model on the "
                                 "other folds, both models scored on the held-out cases: Dice per region, volume "
                                 "error), then fine-tune on every case: RUN/final/model, RUN/comparison.json. "
                                 "Stop with Ctrl-C or RUN/stop.requested; the same command continues.")
    f.add_argument("cohort", type=Path)
    f.add_argument("--out", type=Path, required=True, metavar="RUN", help="run folder")
    f.add_argument("--model", help="starting model: id, id@version or package folder (default: the default model)")
    f.add_argument("--init", type=Path, help="start the weights from a pre-training run instead (its network); "
                                             "the comparison is still against --model")
    f.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5, at most the cases)")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--max-region-drop", type=float, default=0.05,
                   help="largest drop of one region's mean Dice still called not worse (default 0.05)")
    f.add_argument("--tolerance", type=float, default=0.0,
                   help="how far the mean Dice of WT, TC, ET may fall short of the starting model's and still be "
                        "called not worse (default 0)")
    f.add_argument("--max-iters", type=int, metavar="N", help="iterations of every fine-tuning (default 200)")
    f.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    f.add_argument("--config", type=Path, metavar="FILE.yaml", help="fine-tuning settings (see docs/finetuning.md)")
    f.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                   help="one fine-tuning setting, e.g. --set data.patch_size=[32,32,32]")
    f.add_argument("--progress", default="none", choices=("none", "json"), help="JSON events on stdout")
    f.set_defaults(func=run_finetune)

    i = c.add_parser("install", help="install the fine-tuned model of a cohort run as a new model version",
                     description="Install RUN/final/model into the model cache as <start id>-local, next version, "
                                 "with its provenance. Refused when it was worse than the starting model on the "
                                 "held-out cases, unless --force.")
    i.add_argument("run", type=Path, metavar="RUN")
    i.add_argument("--force", action="store_true", help="install even though it was worse (recorded)")
    i.add_argument("--id", dest="model_id", help="model id (default: <start id>-local)")
    i.add_argument("--version", help="model version (default: the next free N.0.0)")
    i.set_defaults(func=run_install)

    pt = c.add_parser("pretrain", help="pre-train on unlabelled exams, prepared as segmentation inputs are",
                      description="Prepare every exam under --exams (registration onto T1c, brain extraction) "
                                  "into RUN/exams, then Vox-MMSD pre-training in RUN with the network of --model. "
                                  "Start a cohort fine-tune from it with --init RUN. The same command resumes.")
    pt.add_argument("--exams", type=Path, required=True, help="folder with one sub-folder per unlabelled exam")
    pt.add_argument("--out", type=Path, required=True, metavar="RUN")
    pt.add_argument("--model", help="the model whose network and preprocessing to pre-train (default: default)")
    pt.add_argument("--register", default="auto", choices=CHOICES)
    pt.add_argument("--skull-strip", default="auto", choices=CHOICES)
    pt.add_argument("--max-iters", type=int, metavar="N")
    pt.add_argument("--device", default="auto")
    pt.add_argument("--config", type=Path, metavar="FILE.yaml", help="pre-training settings")
    pt.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE")
    pt.add_argument("--progress", default="none", choices=("none", "json"), help="JSON events on stdout")
    pt.set_defaults(func=run_pretrain)


def _proposer(spec: Any) -> Any:
    if not spec:
        return None
    mid, _, ver = str(spec).partition("@")
    return {"id": mid, "version": ver or None}


def run_add(args: argparse.Namespace) -> int:
    from voxmmsd.cohort.add import AddOptions, add_case
    from voxmmsd.errors import VoxMMSDError
    from voxmmsd.io.discovery import case_from_arguments
    from voxmmsd.jobs.events import stdout_writer
    from voxmmsd.sequences import SEQUENCES

    explicit = {k: getattr(args, k) for k in SEQUENCES}
    files = case_from_arguments(args.case, explicit, args.seg, require_all=True)
    if args.seg is not None and files.label != args.seg:
        files = type(files)(files.case_id, files.sequences, args.seg, files.folder, files.matches)
    events = stdout_writer() if args.progress == "json" else None
    try:
        record = add_case(args.cohort, files, proposal=args.proposal, proposed_by=_proposer(args.proposed_by),
                          source=args.source, options=AddOptions(args.register, args.skull_strip, args.labels,
                                                                 args.proposal_labels, args.device), events=events)
    except VoxMMSDError as exc:
        if events is not None:  # the module shows the message, not the last log line
            events.emit("cohort", "error", message=str(exc))
        raise
    if events is None:
        from voxmmsd.cohort.edits import summary_text

        sys.stdout.write(f"added {record['case_id']} to {args.cohort} ({summary_text(record)})\n")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from voxmmsd.cohort.edits import summary_text
    from voxmmsd.cohort.layout import list_cases, open_cohort

    cases = list_cases(open_cohort(args.cohort))
    if args.json:
        json.dump(cases, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    lines = [f"{len(cases)} case(s) in {args.cohort}"]
    for c in cases:
        if "error" in c:
            lines.append(f"  {c['case_id']}  DAMAGED: {c['error']}")
            continue
        by = c.get("proposed_by") or {}
        model = f"{by.get('id')} {by.get('version') or ''}".strip() if by else "-"
        vol = c.get("volumes_ml") or {}
        lines.append(f"  {c['case_id']}  {str(c.get('created', ''))[:10]}  proposed by {model}; {summary_text(c)}; "
                     + " ".join(f"{k} {float(vol[k]):.1f} mL" for k in ("WT", "TC", "ET") if k in vol))
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    from voxmmsd.cohort.layout import open_cohort, remove_case

    cohort = open_cohort(args.cohort)
    for cid in args.case_ids:
        remove_case(cohort, cid)
        sys.stdout.write(f"removed {cid}\n")
    return 0


def run_finetune(args: argparse.Namespace) -> int:
    from voxmmsd.cohort.compare import Rule, format_table
    from voxmmsd.cohort.learn import LearnOptions, learn, read_comparison, stdout_stream
    from voxmmsd.cohort.recipe import cohort_config
    from voxmmsd.models.catalog import resolve_model

    start = resolve_model(args.model)
    cfg = cohort_config(start.meta, start.folder, args.init, args.config, args.overrides, args.max_iters)
    options = LearnOptions(folds=args.folds, seed=args.seed, rule=Rule(args.max_region_drop, args.tolerance),
                           device=args.device)
    status = learn(args.cohort, args.out, str(start.folder), cfg, options, args.init, stdout_stream(args.progress))
    if args.progress == "json":
        return 0
    if status == "stopped":
        sys.stdout.write(f"Stopped. Continue with the same command (the finished folds are kept): {args.out}\n")
        return 0
    comparison = read_comparison(args.out)
    decision = comparison["decision"]
    sys.stdout.write(format_table(comparison["summary"]) + "\n")
    sys.stdout.write(("NOT WORSE: " if decision["not_worse"] else "WORSE: ") + decision["reason"] + "\n")
    sys.stdout.write(f"Install with: voxmmsd cohort install {args.out}"
                     + ("" if decision["not_worse"] else " --force   (not recommended)") + "\n")
    return 0


def run_install(args: argparse.Namespace) -> int:
    from voxmmsd.cohort.install import describe, install_candidate

    pkg = install_candidate(args.run, force=args.force, model_id=args.model_id, version=args.version)
    sys.stdout.write(f"installed {pkg.summary()} in {pkg.folder}\n  {describe(pkg.meta)}\n"
                     f"Use it with --model {pkg.id}@{pkg.version}\n")
    return 0


def run_pretrain(args: argparse.Namespace) -> int:
    from voxmmsd.cohort.add import AddOptions
    from voxmmsd.cohort.exams import pretrain_on_exams

    options = AddOptions(register=args.register, skull_strip=args.skull_strip, device=args.device)
    return pretrain_on_exams(args.exams, args.out, args.model, options, args.config, args.overrides, args.max_iters,
                             args.device, sys.stdout if args.progress == "json" else None)
