"""``voxmmsd segment``: four sequences in, a labelled tumour segmentation out (one case, or a batch)."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

from voxmmsd.cli.case_args import add_sequence_arguments, resolve_case

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
    p.add_argument("--model", default=None, help="model id (ID or ID@VERSION) or package folder "
                                                  "(default: voxmmsd-brats-default)")
    p.add_argument("--backend", default="auto", choices=("auto", "torch", "onnx"),
                   help="auto = PyTorch when installed, else ONNX Runtime")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp16", "fp32"),
                   help="PyTorch backend precision (auto: bf16 where the hardware supports it)")
    p.add_argument("--tta", action="store_true", help="mirroring test-time augmentation (8x slower)")
    p.add_argument("--patch-size", type=int, nargs=3, metavar=("D", "H", "W"),
                   help="sliding windows of this size instead of one pass over the whole brain")
    p.add_argument("--overlap", type=float, default=None, help="window overlap (default: the model's, 0.5)")
    p.add_argument("--blend", default="gaussian", choices=("gaussian", "constant"),
                   help="how overlapping windows are blended (default: gaussian)")
    p.add_argument("--register", nargs="?", const="on", default="auto", choices=("auto", "on", "off"),
                   help="rigid co-registration onto T1c (mutual information): auto = when the grids differ "
                        "(default), on (also a bare --register), "
                        "off = trust the scanner's coordinates")
    p.add_argument("--skull-strip", default="auto", choices=("auto", "on", "off"),
                   help="brain extraction (deepbet, needs PyTorch): auto = when the images do not look "
                        "skull-stripped (default; refuses when it cannot run), on, off")
    p.add_argument("--min-component-ml", type=float, default=None,
                   help="remove tumour components smaller than this many mL, the largest always kept "
                        "(default: the model's own setting, inference.min_component_ml; 0 = off)")
    p.add_argument("--min-et-component-ml", type=float, default=None,
                   help="relabel NETC every ET component smaller than this many mL, the largest kept "
                        "(default: the model's inference.min_et_component_ml; 0 = off)")
    p.add_argument("--tumour-bias", type=float, default=None, metavar="LOGODDS",
                   help="favour tumour over background by this many log-odds before labelling (positive: "
                        "more tumour; default: the model's inference.tumour_bias, chosen on its folds; 0 = off)")
    p.add_argument("--no-fallback", action="store_true",
                   help="use the chosen model even when a sequence is missing for which its package names a "
                        "better model (inference.fallback_when_missing; the default model: 1.0.0 without T2w "
                        "or FLAIR)")
    p.add_argument("--on-implausible", default="warn", choices=("warn", "refuse"),
                   help="what to do when the plausibility checks find the result implausible (docs/plausibility.md): "
                        "warn = write it with a warning (default); refuse = write report.json (and qc.png) but no "
                        "label map, exit status 3 (batch: the case is listed as refused)")
    p.add_argument("--labels", default="brats2023", choices=("brats2023", "legacy"),
                   help="label values of the NIfTI output (legacy: ET = 4)")
    p.add_argument("--no-qc", action="store_true", help="do not write qc.png")
    p.add_argument("--shard", help="batch: this process's share i/n of the cases (0 <= i < n)")
    p.add_argument("--redo", action="store_true", help="batch: segment cases that are already done again")
    p.add_argument("--overwrite", action="store_true",
                   help="one case: replace the result already in --out (refused without it)")
    p.add_argument("--progress", choices=("bar", "json", "none"), default="bar",
                   help="json: one JSON event per line on stdout")
    p.set_defaults(func=run)


def _predictor(args: argparse.Namespace, package: Any = None):
    from voxmmsd.infer.predictor import Predictor, PredictorConfig
    from voxmmsd.models.catalog import resolve_model

    package = package if package is not None else resolve_model(args.model)
    cfg = PredictorConfig(backend=args.backend, device=args.device, precision=args.precision,
                          register=args.register, skull_strip=args.skull_strip,
                          tta=True if args.tta else None,
                          patch_size=tuple(args.patch_size) if args.patch_size else None,
                          overlap=args.overlap, blend=args.blend, min_component_ml=args.min_component_ml,
                          min_et_component_ml=args.min_et_component_ml, tumour_bias=args.tumour_bias)
    return Predictor(package, cfg)


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
    from voxmmsd.infer.fallback import switch_package
    from voxmmsd.infer.outputs import (
        bytes_needed,
        check_free_space,
        check_output_apart,
        claim_output,
        warning_kind,
        write_outputs,
    )
    from voxmmsd.infer.predictor import load_for_package
    from voxmmsd.models.catalog import resolve_model
    from voxmmsd.plausibility.verdict import REFUSED_EXIT_CODE, refuses

    t0 = time.perf_counter()
    files = resolve_case(args, require_all=False)
    check_output_apart(args.out, files)  # never the case folder itself
    if events:
        events.emit("segment", "start", total=3, message=f"case {files.case_id}")
    # one writer per output folder, no silent replacement; a folder made here goes again if the run fails
    with claim_output(args.out, overwrite=args.overwrite):
        package = resolve_model(args.model)  # model.json and checksums only: the network is not loaded yet
        # a model that cross-validated better without a missing sequence, if the package names one
        package, note = switch_package(package, list(files.sequences), resolve_model, not args.no_fallback)
        if note:
            log.info("%s", note)
        # read and check the images before the model loads: bad input fails in a second, not after it
        _stage(events, "read", 0, 1, "reading the images")
        case = load_for_package(package, files, args.register, getattr(args, "skull_strip", "auto"), args.device)
        _stage(events, "check", 0, 1, "checking the inputs and the free space")
        check_free_space(args.out, bytes_needed(case.geometry.shape))
        t_read = time.perf_counter() - t0
        predictor = _predictor(args, package)
        _stage(events, "preprocess", 0, 1, "model ready; preparing the images")

        def progress(message: str, i: int, n: int) -> None:  # per window, or per TTA pass of one crop
            if message == "done":
                _stage(events, "postprocess", 1, 1, "post-processing done")
            else:
                _stage(events, "predict", i, n, message)

        pred = predictor.predict(case, progress=progress)
        pred.timings_s = {"read": t_read, **pred.timings_s}
        if note:
            pred.warnings = [note] + list(pred.warnings)
        model = {"id": predictor.package.id, "version": predictor.package.version}
        refused = refuses(pred.verdict, args.on_implausible)
        _stage(events, "write", 0, 1, "writing the report" if refused else "writing the outputs")
        outputs = write_outputs(pred, args.out, model, predictor.package.label_table, args.labels, not args.no_qc,
                                extra={"predictor": predictor.config.to_dict()}, label_map=not refused)
    kinds = {a["message"]: a["kind"] for a in pred.alerts}
    for w in pred.warnings:
        log.warning("%s", w)
        if events:
            events.emit("segment", "warning", message=w, kind=kinds.get(w, warning_kind(w)))
    total = time.perf_counter() - t0
    verdict = pred.plausibility.get("summary", "not checked")
    if refused:
        message = (f"Refused (--on-implausible refuse): the result is implausible, so no label map was written. "
                   f"{verdict}. See {outputs['report']}.")
        log.error("%s", message)
        if events:
            events.emit("segment", "error", message=message, refused=True, outputs=outputs,
                        plausibility=pred.verdict)
        return REFUSED_EXIT_CODE
    if events:
        events.emit("segment", "done", outputs=outputs, volumes_ml=pred.volumes_ml, seconds=total,
                    plausibility=pred.verdict)
    else:
        vols = ", ".join(f"{k} {v:.1f} mL" for k, v in pred.volumes_ml.items() if k in ("WT", "TC", "ET"))
        sys.stdout.write(f"{files.case_id}: {vols} -> {args.out} ({total:.1f} s); plausibility: {verdict}\n")
    return 0


def _stage(events: Any, stage: str, iteration: int, total: int, message: str) -> None:
    """A progress event of one stage of a single-case run (read, check, preprocess, predict,
    postprocess, write; see docs/inference.md), for programs such as the Slicer module."""
    if events:
        events.emit(stage, "progress", iteration=iteration, total=total, message=message)


def _run_batch(args: argparse.Namespace, events: Any) -> int:
    from voxmmsd.infer.batch import batch_exit_code, discover_cases, parse_shard, run_batch
    from voxmmsd.infer.fallback import Chooser
    from voxmmsd.models.catalog import resolve_model

    shard = parse_shard(args.shard)
    dataset = discover_cases(args.batch, exclude=[args.out])  # a bad case folder is a failed row, not an abort
    predictor = _predictor(args)
    chooser = Chooser(predictor, lambda spec: _predictor(args, resolve_model(spec)), enabled=not args.no_fallback)
    results = run_batch(predictor, dataset, args.out, register=args.register, convention=args.labels,
                        shard=shard, events=events, progress_bar=args.progress == "bar", qc=not args.no_qc,
                        redo=args.redo, chooser=chooser, on_implausible=args.on_implausible)
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
