"""Calibrate the plausibility checks (voxmmsd.plausibility) on the labelled development cases.

For every labelled case of ``--data``: its reference label map (a correct result), deliberately
wrong results built from it (T1n/T1c swapped, T1n given as T1c, T2w/FLAIR swapped, the label map
given as FLAIR, another patient's FLAIR, the label map moved 15 mm), and the predictions of the
models of each ``--protocol`` folder (``scripts/evaluate_default_model.sh --protocol``: ``pred/`` on
the clean inputs, ``pred-<shift>/`` on pipeline-shifted inputs ``inputs-pred-<shift>/``). A
prediction counts as wrong when its whole-tumour Dice is under 0.6 or it calls over 20 mL of tumour
more than 10 mm from the reference (``eval*/per_case.csv``), else as correct. The command that made
the table of docs/plausibility.md is given there; in short:

    python scripts/calibrate_plausibility.py measure --data /work/shared/data --out RUN \\
        --protocol PROTOCOL/w210 PROTOCOL/b100 --shifts bias ras thick5mm [--shard i/n]
    python scripts/calibrate_plausibility.py table --out RUN

``measure`` writes ``per_case.csv`` (``per_case-i.csv`` per shard; every check's value for every
result; a run resumes after the last finished case), ``table`` merges them into ``summary.json``
and ``tables.md`` (verdict counts per kind of result, and per check the range over the correct
results and the wrong kinds it flags).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import plausibility_inputs as wrong

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


#: kinds of result that should pass (false alarms) and deliberately wrong ones (detection)
CORRECT_KINDS = ("reference", "prediction", "shifted_prediction")
WRONG_KINDS = ("swap_t1n_t1c", "t1n_as_t1c", "swap_t2w_flair", "label_as_flair", "foreign_flair", "shift_15mm",
               "untrained", "early_checkpoint", "bad_prediction", "bad_shifted_prediction")
#: a model's prediction is a wrong result when its whole-tumour Dice is below this ...
BAD_DICE_WT = 0.6
#: ... or it calls more than this many mL of tumour over 10 mm from the reference (metrics/false_positive.py)
BAD_FP_FAR_ML = 20.0
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


def t1n_as_t1c(images: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """The T1n given for T1c too (a pre-contrast image selected twice)."""
    out = dict(images)
    out["t1c"] = images["t1n"]
    return out


def constructed(files: Any, images: Dict[str, np.ndarray], label: np.ndarray, geometry: Any,
                other: Optional[Tuple[str, np.ndarray, Any]]) -> Iterator[Tuple[str, Any, Dict[str, Any]]]:
    """(kind, assessment, extra columns) of the reference and the wrong results built from one case;
    ``other`` is (case id, FLAIR, grid) of another patient."""
    from voxmmsd.plausibility.reference import lr_axis_of

    spacing = tuple(float(v) for v in geometry.spacing[::-1])
    yield "reference", check(images, label, geometry), {}
    yield "swap_t1n_t1c", check(wrong.swapped(images, "t1n", "t1c"), label, geometry), {}
    yield "t1n_as_t1c", check(t1n_as_t1c(images), label, geometry), {}
    yield "swap_t2w_flair", check(wrong.swapped(images, "t2w", "t2f"), label, geometry), {}
    yield "label_as_flair", check(wrong.label_as_sequence(images, label, "t2f"), label, geometry), {}
    if other is not None and other[2].same_as(geometry):
        yield "foreign_flair", check({**images, "t2f": other[1]}, label, geometry), {"foreign": other[0]}
    brain = np.any(np.stack(list(images.values())) != 0, axis=0)
    moved = wrong.shifted_label(label, spacing, 15.0, lr_axis_of(geometry.direction), brain)
    yield "shift_15mm", check(images, moved, geometry), scores(moved, label)


def eval_rows(path: Path) -> Dict[str, Dict[str, float]]:
    """case id -> {dice, fp_far_ml} of the WT rows of a ``voxmmsd evaluate`` per_case.csv."""
    import csv

    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        return {r["case_id"]: {"dice": float(r["dice"]), "fp_far_ml": float(r.get("fp_far_ml") or 0.0)}
                for r in csv.DictReader(f) if r.get("region") == "WT"}


def find_inputs(root: Path, case_id: str) -> Optional[Path]:
    """The case folder ``case_id`` under ``root`` (directly or one grouping level deeper, e.g. fold0/)."""
    for candidate in [root / case_id] + sorted(root.glob(f"*/{case_id}")):
        if candidate.is_dir():
            return candidate
    return None


def protocol_results(files: Any, images: Dict[str, np.ndarray], label: np.ndarray, geometry: Any,
                     args: argparse.Namespace) -> Iterator[Tuple[str, Any, Dict[str, Any]]]:
    """Predictions of the models of ``--protocol`` folders (evaluate_default_model.sh --protocol):
    ``pred/`` on the clean inputs, ``pred-<shift>/`` on pipeline-shifted inputs (``inputs-pred-<shift>/``),
    each judged correct or wrong by its Dice and far false-positive volume (``eval*/per_case.csv``)."""
    from voxmmsd.io.discovery import find_case

    for root in args.protocol or ():
        for shift in [""] + list(args.shifts):
            suffix = f"-{shift}" if shift else ""
            pred_path = Path(root) / f"pred{suffix}" / files.case_id / "segmentation.nii.gz"
            score = eval_rows(Path(root) / f"eval{suffix}" / "per_case.csv").get(files.case_id)
            if not pred_path.is_file() or score is None:
                continue
            bad = score["dice"] < BAD_DICE_WT or score["fp_far_ml"] > BAD_FP_FAR_ML
            if shift and args.shifted_bad_only and not bad:
                continue
            imgs, geom = images, geometry
            if shift:
                folder = find_inputs(Path(root) / f"inputs-pred-{shift}", files.case_id)
                if folder is None:
                    continue
                imgs, _, geom = load(find_case(folder))
            pred = read_label(pred_path, geom)
            kind = ("bad_" if bad else "") + ("shifted_prediction" if shift else "prediction")
            yield kind, check(imgs, pred, geom), {"model": Path(root).name, "shift": shift or "none",
                                                  "dice_wt": round(score["dice"], 4),
                                                  "fp_far_ml": round(score["fp_far_ml"], 2)}


def network_results(files: Any, images: Dict[str, np.ndarray], label: np.ndarray, geometry: Any,
                    args: argparse.Namespace) -> Iterator[Tuple[str, Any, Dict[str, Any]]]:
    """Predictions of an untrained network and of an early checkpoint (when given)."""
    for kind, folder in (("untrained", args.pred_untrained), ("early_checkpoint", args.pred_early)):
        pred = read_label(Path(folder) / files.case_id / "segmentation.nii.gz", geometry) if folder else None
        if pred is not None:
            yield kind, check(images, pred, geometry), scores(pred, label)


def rule_comparison(files: Any, images: Dict[str, np.ndarray], label: np.ndarray, geometry: Any,
                    pred_dir: Path) -> Optional[Dict[str, Any]]:
    """Dice of a prediction post-processed by the size-only rules and by the evidence rules."""
    from voxmmsd.infer.components import relabel_et_by_evidence, remove_components_by_evidence
    from voxmmsd.infer.postprocess import min_component_voxels, remove_small_components, small_et_components_to_netc

    pred = read_label(Path(pred_dir) / files.case_id / "segmentation.nii.gz", geometry)
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


def separation(rows: Sequence[Dict[str, Any]], checks: Sequence[str]) -> str:
    """Per check: the range of its value over the correct results and the share of wrong results it
    flags on its own (doubtful or fail) -- which checks separate which kinds of error."""
    lines = ["| check | correct results: min .. max | wrong kinds it flags (share of that kind) |", "|---|---|---|"]
    for name in checks:
        good = [float(r[name]) for r in rows if r["group"] == "false_alarm" and r.get(name) not in (None, "")]
        flagged = []
        for kind in WRONG_KINDS:
            mine = [r for r in rows if r["kind"] == kind]
            hits = sum(name in str(r["failed"]).split() or name in str(r["doubtful"]).split() for r in mine)
            if hits:
                flagged.append(f"{kind} {hits}/{len(mine)}")
        span = f"{min(good):.3g} .. {max(good):.3g}" if good else "-"
        lines.append(f"| {name} | {span} | {', '.join(flagged) or '-'} |")
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


def read_csv(path: Path) -> List[Dict[str, Any]]:
    import csv

    with open(path, newline="") as f:
        return [{k: (v if v != "" else None) for k, v in r.items()} for r in csv.DictReader(f)]


def cmd_measure(args: argparse.Namespace) -> int:
    """Measure every result of this worker's share of the cases; per_case[-i].csv after every case."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    index, count = (int(v) for v in args.shard.split("/"))
    cases = labelled_cases(args.data, args.cases)[index::count]
    name = "per_case.csv" if count == 1 else f"per_case-{index}.csv"
    rows: List[Dict[str, Any]] = read_csv(out / name) if (out / name).is_file() else []
    done = {r["case_id"] for r in rows}
    rules: List[Dict[str, Any]] = []
    other: Optional[Tuple[str, np.ndarray, Any]] = None  # the previous patient's FLAIR: the "foreign" one
    for files in cases:
        if files.case_id in done:
            continue
        images, label, geometry = load(files)
        results = list(constructed(files, images, label, geometry,
                                   other if other and SAME_PATIENT.get(files.case_id) != other[0] else None))
        results += list(protocol_results(files, images, label, geometry, args))
        results += list(network_results(files, images, label, geometry, args))
        for kind, assessment, extra in results:
            rows.append(row_of(files.case_id, kind, assessment, extra))
            log.info("%s %-22s %-11s %s", files.case_id, kind, assessment.verdict, assessment.summary())
        if args.rules:
            for root in args.protocol or ():
                comparison = rule_comparison(files, images, label, geometry, Path(root) / "pred")
                if comparison:
                    rules.append({"model": Path(root).name, **comparison})
        other = (files.case_id, images["t2f"], geometry)
        write_csv(out / name, rows)  # after every case: a long run can be followed and resumed
    if rules:
        write_csv(out / ("component_rules.csv" if count == 1 else f"component_rules-{index}.csv"), rules)
    return cmd_table(args)


def regrade(row: Dict[str, Any], limits: Dict[str, Any]) -> Dict[str, Any]:
    """``row`` graded again by the current ``limits`` from its stored check values (so a changed
    threshold needs no new measurement): its group, failed and doubtful checks and verdict."""
    from voxmmsd.plausibility.record import DOUBTFUL, FAIL
    from voxmmsd.plausibility.verdict import IMPLAUSIBLE, PLAUSIBLE

    out = dict(row)
    out["group"] = "false_alarm" if row["kind"] in CORRECT_KINDS else "wrong"
    status = {name: limit.grade(None if row.get(name) in (None, "") else float(row[name]))
              for name, limit in limits.items()}
    out["failed"] = " ".join(n for n, s in status.items() if s == FAIL)
    out["doubtful"] = " ".join(n for n, s in status.items() if s == DOUBTFUL)
    out["verdict"] = IMPLAUSIBLE if out["failed"] else (DOUBTFUL if out["doubtful"] else PLAUSIBLE)
    return out


def cmd_table(args: argparse.Namespace) -> int:
    """summary.json and tables.md from every per_case*.csv in --out, graded by the current limits."""
    from voxmmsd.io.atomic import write_json
    from voxmmsd.plausibility.appearance import LIMITS as APPEARANCE
    from voxmmsd.plausibility.sequences import LIMITS as SEQUENCES
    from voxmmsd.plausibility.spatial import LIMITS as SPATIAL

    out = Path(args.out)
    limits = {name: limit for group in (SEQUENCES, APPEARANCE, SPATIAL) for name, limit in group.items()}
    rows = [regrade(r, limits) for path in sorted(out.glob("per_case*.csv")) for r in read_csv(path)]
    summary = summarise(rows)
    thresholds = {name: limit.to_dict() for name, limit in limits.items()}
    write_json(out / "summary.json", {"cases": sorted({r["case_id"] for r in rows}), "summary": summary,
                                      "thresholds": thresholds,
                                      "bad_prediction": {"dice_wt_below": BAD_DICE_WT,
                                                         "fp_far_ml_above": BAD_FP_FAR_ML}})
    text = table(summary) + "\n\n" + separation(rows, list(thresholds)) + "\n"
    from voxmmsd.io.atomic import write_text

    write_text(out / "tables.md", text)
    sys.stdout.write(text)
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
    m.add_argument("--out", type=Path, required=True, help="folder for per_case.csv, summary.json, tables.md")
    m.add_argument("--cases", nargs="*", help="case ids (default: all)")
    m.add_argument("--shard", default="0/1", help="i/n: measure every n-th case from the i-th (parallel workers)")
    m.add_argument("--protocol", type=Path, nargs="*", help="folders of evaluate_default_model.sh --protocol "
                                                             "(pred/, pred-<shift>/, inputs-pred-<shift>/, eval*/)")
    m.add_argument("--shifts", nargs="*", default=["bias", "ras", "thick5mm", "uint8", "zscore"],
                   help="the pipeline shifts of --protocol to judge")
    m.add_argument("--shifted-bad-only", action="store_true",
                   help="judge the predictions on shifted inputs only where they are wrong (reads fewer inputs)")
    m.add_argument("--pred-untrained", type=Path, help="predictions of an untrained network (DIR/<case>/...)")
    m.add_argument("--pred-early", type=Path, help="predictions of an early checkpoint")
    m.add_argument("--rules", action="store_true", help="also compare the size-only and the evidence component "
                                                       "rules on each --protocol's pred/ (component_rules.csv)")
    m.set_defaults(func=cmd_measure)
    t = sub.add_parser("table", help="summary.json and tables.md from the per_case*.csv of --out")
    t.add_argument("--out", type=Path, required=True)
    t.set_defaults(func=cmd_table)
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    args = parse(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
