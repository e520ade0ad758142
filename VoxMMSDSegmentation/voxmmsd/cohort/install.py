"""The candidate of a cohort run: its ``model.json`` (the starting model's post-processing, the cohort's
provenance) and its installation as a new model version, refused when it is worse unless forced.

``model.json`` itself is not under a checksum (the files it lists are), so these edits keep the package
valid; each edit is checked against the schema and written atomically.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

from voxmmsd.errors import ModelError

log = logging.getLogger(__name__)

#: suffix of the id of a model fine-tuned on a local cohort (``voxmmsd-brats-default-local``)
LOCAL_SUFFIX = "-local"


def _update_model_json(folder: Path, change: Any) -> Dict[str, Any]:
    from voxmmsd.io.atomic import write_json
    from voxmmsd.models.package import MODEL_JSON, _validate, read_model_json

    meta = read_model_json(Path(folder))
    change(meta)
    _validate(meta, Path(folder) / MODEL_JSON)
    write_json(Path(folder) / MODEL_JSON, meta)
    return meta


def adopt_inference(folder: Path, start_meta: Mapping[str, Any]) -> None:
    """Give the package in ``folder`` the starting model's inference settings (component limits, fallbacks),
    keeping its own output kind, so that both models are post-processed alike."""
    def change(meta: Dict[str, Any]) -> None:
        own = str((meta.get("inference") or {}).get("output", "classes"))
        meta["inference"] = {**dict(start_meta.get("inference") or {}), "output": own}

    _update_model_json(folder, change)


def record_provenance(folder: Path, plan: Mapping[str, Any], comparison: Mapping[str, Any]) -> None:
    """``training.cohort`` and ``metrics.cohort_crossval`` of the candidate: cohort size, date, starting
    model, the held-out scores of both models and the decision."""
    summary = comparison.get("summary") or {}

    def scores(model: str) -> Dict[str, Any]:
        return {r: {"dice": round(float(v["dice"]), 4),
                    "abs_volume_error_ml": round(float(v["abs_volume_error_ml"]), 2)}
                for r, v in (summary.get(model) or {}).items()}

    def change(meta: Dict[str, Any]) -> None:
        meta.setdefault("training", {})["cohort"] = {
            "cases": int(comparison.get("cases", len(plan.get("cases", [])))),
            "date": comparison.get("date"), "start_model": dict(plan["start_model"]),
            "init": plan.get("init"), "folds": len(plan.get("folds", [])),
            "decision": dict(comparison.get("decision") or {}),
        }
        meta.setdefault("metrics", {})["cohort_crossval"] = {
            "protocol": comparison.get("protocol"), "start": scores("start"), "finetuned": scores("finetuned")}

    _update_model_json(folder, change)


def next_version(model_id: str) -> str:
    """``N.0.0`` with N one more than the highest major version of ``model_id`` installed."""
    from voxmmsd.models.cache import installed

    majors = [int(m.group(1)) for i, v, _ in installed() if i == model_id for m in [re.match(r"^(\d+)", v)] if m]
    return f"{max(majors, default=0) + 1}.0.0"


def local_id(start_id: str) -> str:
    return start_id if start_id.endswith(LOCAL_SUFFIX) else start_id + LOCAL_SUFFIX


def install_candidate(run_dir: Path, force: bool = False, model_id: Optional[str] = None,
                      version: Optional[str] = None) -> Any:
    """Install the candidate of a finished cohort run as a new model version (``<start id>-local``, the next
    free ``N.0.0``) and return the installed :class:`~voxmmsd.models.package.ModelPackage`.

    Refused (:class:`ModelError`, nothing installed) when the comparison found it worse than the starting
    model, unless ``force``; an override is recorded in the installed ``model.json``.
    """
    from voxmmsd.cohort.layout import now_iso
    from voxmmsd.cohort.learn import candidate_folder, read_comparison
    from voxmmsd.models.cache import add_package
    from voxmmsd.models.package import load_package, safe_name

    comparison = read_comparison(Path(run_dir))
    folder = candidate_folder(Path(run_dir))
    if not (folder / "model.json").is_file():
        raise ModelError(f"{run_dir} has no candidate model ({folder} is missing): the final fine-tuning has not "
                         f"finished. Run the same 'voxmmsd cohort finetune' command again to complete it.")
    decision = comparison.get("decision") or {}
    start = comparison.get("start_model") or {}
    if not decision.get("not_worse") and not force:
        raise ModelError(f"Not installed: the fine-tuned model is worse than {start.get('id')} "
                         f"{start.get('version')} on the held-out cohort cases ({decision.get('reason')}). Keep "
                         f"using the starting model and add more reviewed cases, or install it anyway with "
                         f"--force (Slicer: 'Install anyway').")
    package = load_package(folder)  # checksums verified before anything is copied
    mid = safe_name(model_id or local_id(str(start.get("id") or package.id)), "id")
    ver = safe_name(version or next_version(mid), "version")
    work = Path(tempfile.mkdtemp(prefix="voxmmsd-install-"))
    try:
        copy = work / "model"
        shutil.copytree(folder, copy)
        cases = comparison.get("cases")
        from voxmmsd.models.integrity import sha256_file
        from voxmmsd.models.package import WEIGHTS
        from voxmmsd.nets.weights import restamp_weights

        # the weights name the model they belong to (checked at every load): the installed copy is the new version
        restamp_weights(copy / WEIGHTS, id=mid, version=ver)
        weights_sha = sha256_file(copy / WEIGHTS)

        def change(meta: Dict[str, Any]) -> None:
            meta["id"], meta["version"] = mid, ver
            meta["files"][WEIGHTS] = weights_sha
            meta["name"] = f"{start.get('name') or start.get('id')}, local fine-tune"
            meta["description"] = (f"Fine-tuned from {start.get('id')} {start.get('version')} on a local cohort "
                                   f"of {cases} reviewed cases. {decision.get('reason', '')}".strip())
            cohort = meta.setdefault("training", {}).setdefault("cohort", {})
            cohort["installed"] = {"date": now_iso(), "override": bool(force and not decision.get("not_worse"))}

        _update_model_json(copy, change)
        installed = add_package(copy)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("installed %s from %s", installed.summary(), run_dir)
    return installed


def describe(meta: Mapping[str, Any]) -> str:
    """One line of provenance for a model fine-tuned on a cohort ("" for other models): cohort size, date,
    the held-out Dice of the model and of its starting model, and an override."""
    cohort = (meta.get("training") or {}).get("cohort") if isinstance(meta.get("training"), Mapping) else None
    if not isinstance(cohort, Mapping):
        return ""
    scores = (meta.get("metrics") or {}).get("cohort_crossval") or {}
    tuned, start = scores.get("finetuned") or {}, scores.get("start") or {}

    def dice(s: Mapping[str, Any]) -> str:
        return "/".join(f"{float(s[r]['dice']):.2f}" if r in s else "?" for r in ("WT", "TC", "ET"))

    text = f"cohort of {cohort.get('cases')} cases, {str(cohort.get('date') or '')[:10]}"
    if tuned:
        text += f"; held-out Dice WT/TC/ET {dice(tuned)} vs start {dice(start)}"
    if (cohort.get("installed") or {}).get("override"):
        text += "; installed although worse"
    return text
