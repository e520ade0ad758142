"""``voxmmsd segment``: four sequences in, a labelled tumour segmentation out (one case, or a batch)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from voxmmsd.cli.case_args import add_sequence_arguments, resolve_case
from voxmmsd.infer.options import add_arguments

log = logging.getLogger(__name__)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("segment", help="segment a brain tumour (one case or a folder of cases)",
                       description="Segment a brain tumour from T1n, T1c, T2w and FLAIR. Writes "
                                   "segmentation.nii.gz, segmentation.seg.nrrd, report.json and qc.png on the "
                                   "T1c grid. With --batch, one sub-folder per case and summary.csv.")
    p.add_argument("case", nargs="?", type=Path, help="case folder holding the four sequences")
    add_sequence_arguments(p)
    p.add_argument("--batch", type=Path, metavar="DATASET_DIR", help="segment every case of this folder")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    add_arguments(p)
    p.add_argument("--shard", help="batch: this process's share i/n of the cases (0 <= i < n)")
    p.add_argument("--redo", action="store_true", help="batch: segment cases that are already done again")
    p.add_argument("--overwrite", action="store_true",
                   help="one case: replace the result already in --out (refused without it)")
    p.add_argument("--progress", choices=("bar", "json", "none"), default="bar",
                   help="json: one JSON event per line on stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from voxmmsd.errors import InputError, VoxMMSDError
    from voxmmsd.io.atomic import ensure_writable_dir
    from voxmmsd.jobs.events import EventWriter

    events = EventWriter(stream=sys.stdout) if args.progress == "json" else None
    try:
        if args.batch is None and args.case is None and not any(getattr(args, k) for k in ("t1n", "t1c", "t2w", "t2f")):
            raise InputError("Give a case folder, --t1n/--t1c/--t2w/--t2f images, or --batch DATASET_DIR.")
        if args.batch is not None:
            ensure_writable_dir(args.out)  # fail before any work
            return _run_batch(args, events)
        return _run_single(args, events)
    except VoxMMSDError as exc:
        if events:
            events.emit("segment", "error", message=str(exc))
        raise


def _run_single(args: argparse.Namespace, events: Any) -> int:
    from voxmmsd.infer.options import SegmentOptions
    from voxmmsd.infer.pipeline import Models, segment_case
    from voxmmsd.plausibility.verdict import REFUSED_EXIT_CODE

    options = SegmentOptions.from_namespace(args)
    files = resolve_case(args, require_all=False)
    if events:
        events.emit("segment", "start", total=1, message=f"case {files.case_id}", case_id=files.case_id)
    models = Models(options)  # model.json and checksums only: the network loads after the images were read
    done = segment_case(files, args.out, options, models, events=events, overwrite=args.overwrite)
    pred, outputs = done.prediction, done.outputs
    verdict = pred.plausibility.get("summary", "not checked")
    if done.refused:
        message = (f"Refused (--on-implausible refuse): the result is implausible, so no label map was written. "
                   f"{verdict}. See {outputs['report']}.")
        log.error("%s", message)
        if events:
            events.emit("segment", "error", message=message, refused=True, outputs=outputs,
                        plausibility=pred.verdict, case_id=files.case_id)
        return REFUSED_EXIT_CODE
    if events:
        events.emit("segment", "done", outputs=outputs, volumes_ml=pred.volumes_ml, seconds=done.seconds,
                    plausibility=pred.verdict, case_id=files.case_id)
    else:
        vols = ", ".join(f"{k} {v:.1f} mL" for k, v in pred.volumes_ml.items() if k in ("WT", "TC", "ET"))
        sys.stdout.write(f"{files.case_id}: {vols} -> {args.out} ({done.seconds:.1f} s); plausibility: {verdict}\n")
    return 0


def _run_batch(args: argparse.Namespace, events: Any) -> int:
    from voxmmsd.infer.batch import batch_exit_code, discover_cases, parse_shard, run_batch
    from voxmmsd.infer.options import SegmentOptions
    from voxmmsd.infer.pipeline import Models

    options = SegmentOptions.from_namespace(args)
    shard = parse_shard(args.shard)
    dataset = discover_cases(args.batch, exclude=[args.out])  # a bad case folder is a failed row, not an abort
    models = Models(options)
    models.predictor()  # the main model loads once, before the first case (a broken model fails the run)
    results = run_batch(models, dataset, args.out, options, shard=shard, events=events,
                        progress_bar=args.progress == "bar", redo=args.redo)
    counts = {s: sum(r.status == s for r in results) for s in ("done", "skipped", "refused", "failed")}
    verdicts = {v: sum(r.plausibility == v for r in results) for v in ("plausible", "doubtful", "implausible")}
    if events:
        events.emit("segment", "done", outputs={"folder": str(args.out)}, counts=counts, plausibility=verdicts)
    else:
        refused = f", {counts['refused']} refused as implausible" if counts["refused"] else ""
        sys.stdout.write(f"{counts['done']} segmented, {counts['skipped']} already done{refused}, {counts['failed']} "
                         f"failed -> {args.out}; plausibility: {verdicts['plausible']} plausible, "
                         f"{verdicts['doubtful']} doubtful, {verdicts['implausible']} implausible\n")
        for r in results:
            if r.status == "failed":
                sys.stdout.write(f"  FAILED {r.case_id}: {r.error}\n")
            elif r.plausibility in ("doubtful", "implausible"):
                sys.stdout.write(f"  {r.plausibility.upper()} {r.case_id}"
                                 f"{' (refused: no label map)' if r.status == 'refused' else ''}\n")
    return batch_exit_code(results)
