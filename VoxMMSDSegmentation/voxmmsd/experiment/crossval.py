"""K-fold cross-validation: fixed, saved splits and the summary of out-of-fold scores.

The folds are stratified by source (the folder a case came from, e.g. ``brats2018`` or
``extra/brats21``) so that every fold holds cases of each source: each source's ids are
sorted, shuffled with ``seed`` and dealt round-robin, continuing from fold to fold.
The split file (JSON) records the folds so that every recipe is scored on the same ones.

Scores come from ``voxmmsd evaluate`` (``per_case.csv``) of the predictions that each
fold's model made, through the shipped ``segment`` path, on the cases it never saw.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np

from voxmmsd.errors import InputError


def make_folds(sources: Mapping[str, str], k: int = 5, seed: int = 0) -> List[List[str]]:
    """``k`` disjoint folds of the case ids in ``sources`` (case id -> source name), stratified by source."""
    if k < 2:
        raise InputError(f"Cross-validation needs at least 2 folds, not {k}.")
    if len(sources) < k:
        raise InputError(f"{len(sources)} case(s) cannot fill {k} folds; use fewer folds or more cases.")
    rng = np.random.default_rng(seed)
    folds: List[List[str]] = [[] for _ in range(k)]
    slot = 0
    for source in sorted(set(sources.values())):
        ids = sorted(c for c, s in sources.items() if s == source)
        for i in rng.permutation(len(ids)):
            folds[slot % k].append(ids[int(i)])
            slot += 1
    return [sorted(f) for f in folds]


def keep_together(folds: Sequence[Sequence[str]], groups: Sequence[Sequence[str]]) -> List[List[str]]:
    """``folds`` with the cases of each group (e.g. one patient seen in two BraTS years) moved into the
    fold of the group's first case present; a case of that fold from the mover's source is not needed:
    fold sizes may then differ by one more."""
    out = [list(f) for f in folds]
    where = {c: i for i, f in enumerate(out) for c in f}
    for group in groups:
        present = [c for c in group if c in where]
        if len(present) < 2:
            continue
        home = where[present[0]]
        for c in present[1:]:
            if where[c] != home:
                out[where[c]].remove(c)
                out[home].append(c)
                where[c] = home
    return [sorted(f) for f in out]


def training_ids(folds: Sequence[Sequence[str]], held_out: int) -> List[str]:
    """Every case outside fold ``held_out``."""
    return sorted(c for i, f in enumerate(folds) if i != held_out for c in f)


def write_splits(path: Path, folds: Sequence[Sequence[str]], sources: Mapping[str, str], seed: int) -> Path:
    from voxmmsd.io.atomic import write_json

    write_json(Path(path), {"k": len(folds), "seed": seed, "stratified_by": "source folder",
                            "sources": dict(sorted(sources.items())), "folds": [list(f) for f in folds]})
    return Path(path)


def read_splits(path: Path) -> List[List[str]]:
    """The folds of a split file; raises :class:`InputError` for a missing or malformed file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        folds = [[str(c) for c in f] for f in data["folds"]]
    except FileNotFoundError:
        raise InputError(f"Split file not found: {path}. Create one with voxmmsd experiment crossval splits.") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"Split file {path} is not a cross-validation split ({exc}).") from None
    seen: set = set()
    for f in folds:
        if seen & set(f):
            raise InputError(f"Split file {path}: case(s) {sorted(seen & set(f))[:3]} appear in two folds.")
        seen |= set(f)
    return folds


def cases_seen_by(model_json: Path) -> List[str]:
    """The labelled cases a model package was trained on, from its ``model.json``.

    ``training.training_cases`` (hand-made packages such as 1.0.0, and warm-started ones
    that list their starting model's cases too) and ``training.cases.train`` (what
    ``voxmmsd finetune`` writes) are both read. A model used as the starting point of a
    recipe has seen these cases, so they cannot be held out when the recipe is
    cross-validated; raises :class:`InputError` when the package records neither.
    """
    path = Path(model_json)
    if path.is_dir():
        path = path / "model.json"
    try:
        training = json.loads(path.read_text(encoding="utf-8"))["training"]
    except FileNotFoundError:
        raise InputError(f"{path}: no such model.json (give a model package folder).") from None
    except (ValueError, KeyError, TypeError):
        training = None
    found = None
    if isinstance(training, dict):
        listed = training.get("training_cases")
        run = training.get("cases", {}).get("train") if isinstance(training.get("cases"), dict) else None
        if isinstance(listed, list) or isinstance(run, list):
            found = set(listed or []) | set(run or [])
    if found is None:
        raise InputError(f"{path} does not list its training cases (training.training_cases or "
                         f"training.cases.train), so the cases it saw cannot be held out; give them with "
                         f"--exclude ID,ID,...")
    return sorted(str(c) for c in found)


def restrict_folds(folds: Sequence[Sequence[str]], exclude: Iterable[str]) -> List[List[str]]:
    """The folds without the ``exclude`` cases (kept in place, so fold k stays fold k; a fold may become empty)."""
    drop = set(exclude)
    return [[c for c in f if c not in drop] for f in folds]


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def summarise_folds(rows: Iterable[Mapping[str, Any]], folds: Sequence[Sequence[str]],
                    metrics: Sequence[str] = ("dice", "hd95_mm", "lesion_dice"),
                    regions: Sequence[str] = ("WT", "TC", "ET")) -> Dict[str, Dict[str, Dict[str, float]]]:
    """Per region and metric: mean and SD over cases, SD of the fold means, and the case count.

    ``rows``: per-case rows (``case_id``, ``region`` and the metric columns) as in
    ``per_case.csv``; NaN scores (e.g. HD95 of an empty pair) are left out of that metric.
    """
    fold_of = {c: i for i, f in enumerate(folds) for c in f}
    out: Dict[str, Dict[str, Dict[str, float]]] = {}
    for region in regions:
        sel = [r for r in rows if r.get("region") == region and r.get("case_id") in fold_of]
        out[region] = {}
        for m in metrics:
            vals = np.array([_float(r.get(m)) for r in sel])
            ok = np.isfinite(vals)
            by_fold = [float(np.mean(vals[[ok[j] and fold_of[str(sel[j]["case_id"])] == i for j in range(len(sel))]]))
                       for i in range(len(folds))
                       if any(ok[j] and fold_of[str(sel[j]["case_id"])] == i for j in range(len(sel)))]
            out[region][m] = {
                "mean": float(np.mean(vals[ok])) if ok.any() else float("nan"),
                "sd_cases": float(np.std(vals[ok], ddof=1)) if ok.sum() > 1 else float("nan"),
                "sd_folds": float(np.std(by_fold, ddof=1)) if len(by_fold) > 1 else float("nan"),
                "n": int(ok.sum()),
            }
    return out


def format_table(summary: Mapping[str, Mapping[str, Mapping[str, float]]],
                 metrics: Sequence[str] = ("dice", "lesion_dice", "hd95_mm")) -> str:
    """A Markdown table: one row per region, ``mean ± SD (cases)`` per metric."""
    head = "| region | " + " | ".join(metrics) + " | cases |"
    lines = [head, "|" + "---|" * (len(metrics) + 2)]
    for region, per in summary.items():
        cells = [f"{per[m]['mean']:.3f} ± {per[m]['sd_cases']:.3f}" if m != "hd95_mm"
                 else f"{per[m]['mean']:.1f} ± {per[m]['sd_cases']:.1f}" for m in metrics]
        lines.append(f"| {region} | " + " | ".join(cells) + f" | {per[metrics[0]]['n']} |")
    return "\n".join(lines)


def choose_nested(scores: Mapping[str, Mapping[Any, float]], folds: Sequence[Sequence[str]]) -> List[Any]:
    """For each fold, the setting with the best mean score over the cases of the *other* folds.

    ``scores``: case id -> {setting: score} (higher is better). The fold's own cases never take
    part in choosing its setting, so the numbers reported on it stay out-of-sample. Ties go to
    the setting listed first.
    """
    chosen = []
    for k in range(len(folds)):
        others = [c for i, f in enumerate(folds) if i != k for c in f if c in scores]
        if not others:
            raise InputError(f"No scored case outside fold {k} to choose a setting on.")
        settings = list(scores[others[0]])
        means = [float(np.mean([scores[c][s] for c in others])) for s in settings]
        chosen.append(settings[int(np.argmax(means))])
    return chosen


def paired_difference(rows_a: Iterable[Mapping[str, Any]], rows_b: Iterable[Mapping[str, Any]],
                      metric: str = "dice", regions: Sequence[str] = ("WT", "TC", "ET"),
                      higher_is_better: Optional[bool] = None) -> Dict[str, Dict[str, Any]]:
    """Per region, B minus A over the cases both scored: mean and SD of the differences, wins, Wilcoxon p.

    ``rows_a`` / ``rows_b``: per-case rows as in ``per_case.csv``. Cases scored by only one of
    the two, or with a NaN score in either, are left out (and counted in ``n``). A "win" is a
    higher score, or for distances (``hd95`` metrics, unless ``higher_is_better`` says
    otherwise) a lower one.
    """
    if higher_is_better is None:
        higher_is_better = "hd95" not in metric
    from scipy.stats import wilcoxon

    def table(rows: Iterable[Mapping[str, Any]]) -> Dict[tuple, float]:
        return {(str(r.get("case_id")), str(r.get("region"))): _float(r.get(metric)) for r in rows}

    a, b = table(rows_a), table(rows_b)
    out: Dict[str, Dict[str, Any]] = {}
    for region in regions:
        keys = sorted(k for k in a if k[1] == region and k in b and np.isfinite(a[k]) and np.isfinite(b[k]))
        d = np.array([b[k] - a[k] for k in keys])
        p = float("nan")
        if len(d) >= 2 and np.any(d != 0):
            p = float(wilcoxon(d).pvalue)
        out[region] = {"n": len(d), "mean_a": float(np.mean([a[k] for k in keys])) if keys else float("nan"),
                       "mean_b": float(np.mean([b[k] for k in keys])) if keys else float("nan"),
                       "mean_diff": float(np.mean(d)) if len(d) else float("nan"),
                       "sd_diff": float(np.std(d, ddof=1)) if len(d) > 1 else float("nan"),
                       "b_better": int(np.sum(d > 0 if higher_is_better else d < 0)),
                       "a_better": int(np.sum(d < 0 if higher_is_better else d > 0)), "wilcoxon_p": p}
    return out
