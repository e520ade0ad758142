"""The *Learn from corrections* panel's decisions: the cohort table, the engine command lines of a cohort
fine-tune and of pre-training on unlabelled exams (run as detached jobs, :mod:`VoxMMSDSegmentationLib.jobs`),
the comparison table of a finished run, and installing its model. Plain Python through the engine's own
``voxmmsd.cohort``; tested without Slicer."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Mapping, Optional, Tuple

#: job kinds of the panel (the Jobs table shows them with the training runs)
COHORT_KIND = "cohort"
EXAM_PRETRAIN_KIND = "cohort-pretrain"
#: runs are kept inside the cohort folder
RUNS = "runs"
#: columns of the cohort table and of the comparison table
CASE_COLUMNS = ("Case", "Added", "Proposed by", "Edits", "WT mL", "TC mL", "ET mL")
COMPARISON_COLUMNS = ("Region", "Dice before", "Dice after", "Change", "|Vol. error| before (mL)",
                      "|Vol. error| after (mL)")


def default_cohort() -> Path:
    """``<per-user folder>/cohort``: where the module keeps the cohort unless the user picks another folder."""
    from VoxMMSDSegmentationLib.models import user_home

    return user_home() / "cohort"


def cohort_rows(cohort: Path) -> List[Tuple[str, ...]]:
    """One row per case (:data:`CASE_COLUMNS`); [] while the folder is not a cohort yet."""
    from voxmmsd.cohort.edits import summary_text
    from voxmmsd.cohort.layout import list_cases, open_cohort
    from voxmmsd.errors import InputError

    try:
        cases = list_cases(open_cohort(Path(cohort)))
    except InputError:
        return []
    rows = []
    for c in cases:
        if "error" in c:
            rows.append((c["case_id"], "", "", "damaged: " + c["error"], "", "", ""))
            continue
        by = c.get("proposed_by") or {}
        vol = c.get("volumes_ml") or {}
        rows.append((c["case_id"], str(c.get("created", ""))[:10],
                     f"{by.get('id', '')} {by.get('version') or ''}".strip() if by else "(none)", summary_text(c),
                     *(f"{float(vol[k]):.1f}" if k in vol else "" for k in ("WT", "TC", "ET"))))
    return rows


def new_run_folder(cohort: Path, prefix: str, now: Optional[float] = None) -> Path:
    """``COHORT/runs/<prefix>-<date>-<time>`` (a new folder name, never an existing run)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() if now is None else now))
    folder = Path(cohort) / RUNS / f"{prefix}-{stamp}"
    n = 1
    while folder.exists():
        n += 1
        folder = Path(cohort) / RUNS / f"{prefix}-{stamp}-{n}"
    return folder


@dataclass(frozen=True)
class CohortLearnOptions:
    """What the panel sets for a cohort fine-tune."""

    cohort: str
    out: str
    model: str  # the starting model: id, id@version or package folder
    init: str = ""  # a pre-training run to start the weights from ("" = the starting model's weights)
    iterations: int = 200
    folds: int = 5
    device: str = "auto"


def learn_arguments(o: CohortLearnOptions) -> List[str]:
    """``voxmmsd cohort finetune`` arguments (the engine re-runs the same command to resume)."""
    if not o.model:
        raise ValueError("Choose the model to start from.")
    args = ["cohort", "finetune", str(o.cohort), "--out", str(o.out), "--model", str(o.model),
            "--max-iters", str(int(o.iterations)), "--folds", str(int(o.folds)), "--device", o.device]
    if o.init:
        args += ["--init", str(o.init)]
    return args


def exam_pretrain_arguments(exams: str, out: str, model: str, iterations: int, device: str = "auto") -> List[str]:
    """``voxmmsd cohort pretrain`` arguments: prepare the unlabelled exams, pre-train the model's network."""
    if not exams:
        raise ValueError("Choose the folder of unlabelled exams (one sub-folder per exam).")
    args = ["cohort", "pretrain", "--exams", str(exams), "--out", str(out), "--max-iters", str(int(iterations)),
            "--device", device]
    if model:
        args += ["--model", str(model)]
    return args


def _num(value: Any, digits: int) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return ""
    return "" if not math.isfinite(v) else f"{v:.{digits}f}"


def comparison_rows(comparison: Mapping[str, Any]) -> List[Tuple[str, ...]]:
    """The comparison table (:data:`COMPARISON_COLUMNS`): WT, TC, ET and their mean."""
    summary = comparison.get("summary") or {}
    a, b = summary.get("start") or {}, summary.get("finetuned") or {}
    rows = []
    for region in ("WT", "TC", "ET", "mean"):
        sa, sb = a.get(region) or {}, b.get(region) or {}
        change = ""
        if _num(sa.get("dice"), 3) and _num(sb.get("dice"), 3):
            change = f"{float(sb['dice']) - float(sa['dice']):+.3f}"
        rows.append((region, _num(sa.get("dice"), 3), _num(sb.get("dice"), 3), change,
                     _num(sa.get("abs_volume_error_ml"), 1), _num(sb.get("abs_volume_error_ml"), 1)))
    return rows


def verdict(comparison: Mapping[str, Any]) -> str:
    """One sentence for the panel: better or not, on how many held-out cases, and why."""
    decision = comparison.get("decision") or {}
    start = comparison.get("start_model") or {}
    head = "Not worse than" if decision.get("not_worse") else "WORSE than"
    return (f"{head} {start.get('id', '?')} {start.get('version', '')} on {comparison.get('cases', '?')} held-out "
            f"cohort cases ({len(comparison.get('folds') or [])}-fold cross-validation): "
            f"{decision.get('reason', '')}.")


def read_comparison(run_dir: Path) -> Optional[Mapping[str, Any]]:
    """A run's ``comparison.json``, or None while it has none."""
    from voxmmsd.cohort.learn import read_comparison as read
    from voxmmsd.errors import InputError

    try:
        return read(Path(run_dir))
    except InputError:
        return None


def can_install(comparison: Optional[Mapping[str, Any]], run_dir: Path, override: bool) -> Tuple[bool, str]:
    """Whether Install is enabled, and its tooltip."""
    from voxmmsd.cohort.learn import candidate_folder

    if comparison is None:
        return False, "The run has not compared the models yet."
    if not (candidate_folder(Path(run_dir)) / "model.json").is_file():
        return False, "The final model is still being fine-tuned."
    if (comparison.get("decision") or {}).get("not_worse"):
        return True, "Install the fine-tuned model as a new model version."
    if override:
        return True, "Install although it was worse on the held-out cases (recorded in the model)."
    return False, "It was worse than the starting model on the held-out cases; tick 'Install anyway' to override."


def install(run_dir: Path, force: bool = False) -> Any:
    """Install the run's model (the engine's rule; ModelError when refused) and return its model-selector entry."""
    from voxmmsd.cohort.install import install_candidate

    from VoxMMSDSegmentationLib.models import entry_from_meta

    package = install_candidate(Path(run_dir), force=force)
    return entry_from_meta(package.meta, package.folder, "installed")


def pretraining_result(run_dir: Path) -> Optional[Path]:
    """The run folder, when it holds a finished pre-training (``backbone.safetensors``) to start from."""
    from voxmmsd.jobs.run_folder import RunFolder

    return Path(run_dir) if RunFolder(Path(run_dir)).backbone.is_file() else None
