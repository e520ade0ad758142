"""Calibrate the plausibility checks (voxmmsd.plausibility) on the labelled development cases.

Two steps (docs/plausibility.md gives the exact commands that made the published table):

    # 1. inputs of another pipeline (z-scored intensities, 5 mm slices), as case folders to segment
    python scripts/calibrate_plausibility.py inputs --data /work/shared/data --out RUN/inputs [--cases ID ...]
    voxmmsd segment --batch RUN/inputs/zscore --out RUN/pred-zscore --model ...   # and RUN/inputs/thick

    # 2. measure: false alarms on the reference labels and on predictions, detection of wrong results
    python scripts/calibrate_plausibility.py measure --data /work/shared/data --out docs/results/plausibility \\
        [--pred DIR] [--pred-untrained DIR] [--pred-early DIR] \\
        [--pred-zscore DIR --inputs-zscore DIR] [--pred-thick DIR --inputs-thick DIR]

A prediction folder holds ``<case_id>/segmentation.nii.gz`` (the layout ``voxmmsd segment --batch``
writes). ``measure`` writes ``per_case.csv`` (every check's value for every case and kind of
result), ``summary.json`` (false alarms and detection rate per kind) and prints the table.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import plausibility_inputs as wrong  # noqa: E402

log = logging.getLogger("calibrate_plausibility")

SEQUENCES = ("t1n", "t1c", "t2w", "t2f")


def dataset_roots(data: Path) -> List[Path]:
    """The labelled data set folders under ``data``: ``brats2018/`` and every folder of ``extra/``."""
    roots = [data / "brats2018"] if (data / "brats2018").is_dir() else []
    if (data / "extra").is_dir():
        roots += sorted(p for p in (data / "extra").iterdir() if p.is_dir())
    return roots or [data]


def labelled_cases(data: Path, only: Optional[Sequence[str]] = None) -> List[Any]:
    """The :class:`~voxmmsd.io.discovery.CaseFiles` of every labelled case (optionally only ``only``)."""
    from voxmmsd.io.discovery import find_dataset

    cases = []
    for root in dataset_roots(Path(data)):
        cases += [c for c in find_dataset(root, require_labels=True).cases if c.label is not None]
    if only:
        cases = [c for c in cases if c.case_id in set(only)]
    return sorted(cases, key=lambda c: c.case_id)


def load(files: Any) -> Tuple[Dict[str, np.ndarray], np.ndarray, Any]:
    """(images, internal label map, geometry) of a case, read by the engine's reader."""
    from voxmmsd.io.labels import detect_convention, to_internal
    from voxmmsd.io.reader import load_case

    case = load_case(files)
    convention = detect_convention(sorted(int(v) for v in np.unique(case.label)))
    label = to_internal(case.label, convention or "brats2023")
    return {s: case.channel(s) for s in case.sequences}, label, case.geometry


def cmd_inputs(args: argparse.Namespace) -> int:
    out = Path(args.out)
    for files in labelled_cases(args.data, args.cases):
        images, label, geometry = load(files)
        for kind in args.kinds:
            folder = out / kind / files.case_id
            if (folder / f"{files.case_id}-t2f.nii.gz").exists():
                continue
            imgs, lab, geom = wrong.shifted_inputs(images, label, geometry, kind)
            wrong.write_case(folder, files.case_id, imgs, geom, lab)
            log.info("%s: %s inputs written to %s", files.case_id, kind, folder)
    return 0


#: kinds of result: those that should pass (false alarms) and the deliberately wrong ones (detection)
CORRECT_KINDS = ("reference", "prediction")
WRONG_KINDS = ("swap_t1n_t1c", "swap_t2w_flair", "label_as_flair", "foreign_flair", "shift_15mm",
               "untrained", "early_checkpoint", "zscore_inputs", "thick_inputs")
#: the post-processing of the default model 2.1.0, for the component-rule comparison
RULE_SETTINGS = {"min_component_ml": 20.0, "min_et_component_ml": 1.0}
#: a known same-patient pair (docs: data README); never each other's "foreign" FLAIR
SAME_PATIENT = {"Brats18_2013_20_1": "BraTS-GLI-00012-000", "BraTS-GLI-00012-000": "Brats18_2013_20_1"}


def read_label(path: Path, geometry: Any) -> Optional[np.ndarray]:
    """A label map file as internal labels, checked to lie on ``geometry``; None if absent."""
    import SimpleITK as sitk
    from voxmmsd.io.geometry import Geometry
    from voxmmsd.io.labels import detect_convention, to_internal

    if not path.is_file():
        return None
    image = sitk.ReadImage(str(path))
    if not Geometry.of(image).same_as(geometry):
        raise ValueError(f"{path} does not lie on the case's grid")
    arr = sitk.GetArrayFromImage(image).astype(np.uint8)
    return to_internal(arr, detect_convention(sorted(int(v) for v in np.unique(arr))) or "brats2023")


def dice(a: np.ndarray, b: np.ndarray) -> Optional[float]:
    total = int(np.count_nonzero(a)) + int(np.count_nonzero(b))
    return None if total == 0 else round(2.0 * np.count_nonzero(a & b) / total, 4)


def scores(pred: np.ndarray, ref: np.ndarray) -> Dict[str, Optional[float]]:
    return {"dice_wt": dice(pred > 0, ref > 0), "dice_tc": dice(np.isin(pred, (1, 3)), np.isin(ref, (1, 3))),
            "dice_et": dice(pred == 3, ref == 3)}


def check(images: Dict[str, np.ndarray], label: np.ndarray, geometry: Any) -> Any:
    from voxmmsd.plausibility.reference import lr_axis_of
    from voxmmsd.plausibility.verdict import assess

    spacing = tuple(float(v) for v in geometry.spacing[::-1])
    return assess(images, label, spacing, lr_axis=lr_axis_of(geometry.direction))


def results_of_case(files: Any, other: Any, args: argparse.Namespace) -> Iterator[Tuple[str, Any, Dict[str, Any]]]:
    """(kind, assessment, extra columns) of every result built from one case."""
    images, label, geometry = load(files)
    spacing = tuple(float(v) for v in geometry.spacing[::-1])
    yield "reference", check(images, label, geometry), {}
    pred = read_label(Path(args.pred) / files.case_id / "segmentation.nii.gz", geometry) if args.pred else None
    if pred is not None:
        yield "prediction", check(images, pred, geometry), scores(pred, label)
    yield "swap_t1n_t1c", check(wrong.swapped(images, "t1n", "t1c"), label, geometry), {}
    yield "swap_t2w_flair", check(wrong.swapped(images, "t2w", "t2f"), label, geometry), {}
    yield "label_as_flair", check(wrong.label_as_sequence(images, label, "t2f"), label, geometry), {}
    other_images, _, other_geometry = load(other)
    if other_geometry.same_as(geometry):
        yield "foreign_flair", check(wrong.foreign(images, other_images, "t2f"), label, geometry), \
            {"foreign": other.case_id}
    del other_images
    from voxmmsd.plausibility.reference import lr_axis_of

    brain = np.any(np.stack(list(images.values())) != 0, axis=0)
    moved = wrong.shifted_label(label, spacing, 15.0, lr_axis_of(geometry.direction), brain)
    yield "shift_15mm", check(images, moved, geometry), scores(moved, label)
    for kind, folder in (("untrained", args.pred_untrained), ("early_checkpoint", args.pred_early)):
        pred = read_label(Path(folder) / files.case_id / "segmentation.nii.gz", geometry) if folder else None
        if pred is not None:
            yield kind, check(images, pred, geometry), scores(pred, label)
    for kind, inputs, folder in (("zscore_inputs", args.inputs_zscore, args.pred_zscore),
                                 ("thick_inputs", args.inputs_thick, args.pred_thick)):
        if not (inputs and folder and (Path(inputs) / files.case_id).is_dir()):
            continue
        from voxmmsd.io.discovery import find_case

        shifted = find_case(Path(inputs) / files.case_id)
        imgs, lab, geom = load(shifted)
        pred = read_label(Path(folder) / files.case_id / "segmentation.nii.gz", geom)
        if pred is not None:
            yield kind, check(imgs, pred, geom), scores(pred, lab)


def rule_comparison(files: Any, args: argparse.Namespace) -> Optional[Dict[str, Any]]:
    """Dice of the prediction post-processed by the size-only rules and by the evidence rules."""
    from voxmmsd.infer.components import relabel_et_by_evidence, remove_components_by_evidence
    from voxmmsd.infer.postprocess import min_component_voxels, remove_small_components, small_et_components_to_netc

    images, label, geometry = load(files)
    pred = read_label(Path(args.pred) / files.case_id / "segmentation.nii.gz", geometry) if args.pred else None
    if pred is None:
        return None
    spacing = tuple(float(v) for v in geometry.spacing[::-1])
    n_min = min_component_voxels(RULE_SETTINGS["min_component_ml"], geometry.voxel_volume_ml)
    n_et = min_component_voxels(RULE_SETTINGS["min_et_component_ml"], geometry.voxel_volume_ml)
    old, _ = small_et_components_to_netc(pred, n_et)
    old, _ = remove_small_components(old, n_min, keep_largest=True)
    new, notes_et = relabel_et_by_evidence(pred, images, spacing, n_et)
    new, notes = remove_components_by_evidence(new, images, spacing, n_min)
    out: Dict[str, Any] = {"case_id": files.case_id}
    for name, lab in (("raw", pred), ("size_rule", old), ("evidence_rule", new)):
        out.update({f"{name}_{k}": v for k, v in scores(lab, label).items()})
    out["evidence_notes"] = " | ".join(notes_et + notes)
    return out


def row_of(case_id: str, kind: str, assessment: Any, extra: Dict[str, Any]) -> Dict[str, Any]:
    row: Dict[str, Any] = {"case_id": case_id, "kind": kind,
                           "group": "false_alarm" if kind in CORRECT_KINDS else "wrong",
                           "verdict": assessment.verdict,
                           "failed": " ".join(c.name for c in assessment.checks if c.status == "fail"),
                           "doubtful": " ".join(c.name for c in assessment.checks if c.status == "doubtful")}
    row.update(extra)
    for c in assessment.checks:
        row[c.name] = None if c.value is None else round(float(c.value), 4)
    return row


def summarise(rows: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Per kind: counts of each verdict, the false-alarm or the detection rate."""
    out: Dict[str, Any] = {}
    for kind in CORRECT_KINDS + WRONG_KINDS:
        mine = [r for r in rows if r["kind"] == kind]
        if not mine:
            continue
        counts = {v: sum(r["verdict"] == v for r in mine) for v in ("plausible", "doubtful", "implausible")}
        entry: Dict[str, Any] = {"n": len(mine), **counts}
        if kind in CORRECT_KINDS:
            entry["false_implausible"] = counts["implausible"]
            entry["false_doubtful_or_worse"] = counts["doubtful"] + counts["implausible"]
        else:
            entry["flagged"] = counts["doubtful"] + counts["implausible"]
            entry["detection_rate"] = round(entry["flagged"] / len(mine), 4)
            wt = [r.get("dice_wt") for r in mine if r.get("dice_wt") is not None]
            if wt:
                entry["median_dice_wt"] = round(float(np.median(wt)), 4)
        out[kind] = entry
    wrong_rows = [r for r in rows if r["group"] == "wrong"]
    if wrong_rows:
        flagged = sum(r["verdict"] != "plausible" for r in wrong_rows)
        out["all_wrong"] = {"n": len(wrong_rows), "flagged": flagged,
                            "detection_rate": round(flagged / len(wrong_rows), 4)}
    return out


def table(summary: Dict[str, Any]) -> str:
    lines = ["| results | n | plausible | doubtful | implausible | flagged (doubtful or implausible) |",
             "|---|---|---|---|---|---|"]
    for kind, e in summary.items():
        if kind == "all_wrong":
            lines.append(f"| **all wrong results** | {e['n']} | | | | "
                         f"**{e['flagged']} ({100 * e['detection_rate']:.0f}%)** |")
            continue
        flagged = e["doubtful"] + e["implausible"]
        lines.append(f"| {kind} | {e['n']} | {e['plausible']} | {e['doubtful']} | {e['implausible']} | "
                     f"{flagged} ({100 * flagged / e['n']:.0f}%) |")
    return "\n".join(lines)


def write_csv(path: Path, rows: Sequence[Dict[str, Any]]) -> None:
    from voxmmsd.io.atomic import write_text

    columns: List[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    lines = [",".join(columns)]
    for r in rows:
        lines.append(",".join("" if r.get(k) is None else str(r[k]).replace(",", ";") for k in columns))
    write_text(path, "\n".join(lines) + "\n")


def cmd_measure(args: argparse.Namespace) -> int:
    from voxmmsd.io.atomic import write_json

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cases = labelled_cases(args.data, args.cases)
    ids = [c.case_id for c in cases]
    rows: List[Dict[str, Any]] = []
    rules: List[Dict[str, Any]] = []
    for i, files in enumerate(cases):
        # another patient's FLAIR: the next case in the list that is not the same patient
        others = [c for c in cases[i + 1:] + cases[:i] if SAME_PATIENT.get(files.case_id) != c.case_id]
        for kind, assessment, extra in results_of_case(files, others[0], args):
            rows.append(row_of(files.case_id, kind, assessment, extra))
            log.info("%s %-16s %-11s %s", files.case_id, kind, assessment.verdict, assessment.summary())
        if args.rules:
            comparison = rule_comparison(files, args)
            if comparison:
                rules.append(comparison)
        write_csv(out / "per_case.csv", rows)  # after every case: a long run can be followed
    summary = summarise(rows)
    write_json(out / "summary.json", {"cases": ids, "summary": summary, "arguments": {
        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"}})
    if rules:
        write_csv(out / "component_rules.csv", rules)
    sys.stdout.write(table(summary) + "\n")
    return 0


def parse(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    q = sub.add_parser("inputs", help="write z-scored and thick-slice copies of the cases")
    q.add_argument("--data", type=Path, required=True)
    q.add_argument("--out", type=Path, required=True)
    q.add_argument("--cases", nargs="*", help="case ids (default: all)")
    q.add_argument("--kinds", nargs="*", default=["zscore", "thick"], choices=("zscore", "thick"))
    q.set_defaults(func=cmd_inputs)
    m = sub.add_parser("measure", help="false alarms and detection rate; per-case values and a summary")
    m.add_argument("--data", type=Path, required=True)
    m.add_argument("--out", type=Path, required=True, help="folder for per_case.csv and summary.json")
    m.add_argument("--cases", nargs="*", help="case ids (default: all)")
    m.add_argument("--pred", type=Path, help="predictions to judge as correct results (DIR/<case>/segmentation.nii.gz)")
    m.add_argument("--pred-untrained", type=Path, help="predictions of an untrained network")
    m.add_argument("--pred-early", type=Path, help="predictions of an early checkpoint")
    m.add_argument("--pred-zscore", type=Path, help="predictions on the z-scored inputs")
    m.add_argument("--inputs-zscore", type=Path, help="the z-scored inputs (from 'inputs')")
    m.add_argument("--pred-thick", type=Path, help="predictions on the thick-slice inputs")
    m.add_argument("--inputs-thick", type=Path, help="the thick-slice inputs (from 'inputs')")
    m.add_argument("--rules", action="store_true", help="also compare the size-only and the evidence component "
                                                       "rules on --pred (component_rules.csv)")
    m.set_defaults(func=cmd_measure)
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    args = parse(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
