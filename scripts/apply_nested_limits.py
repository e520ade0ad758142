#!/usr/bin/env python
"""Give each fold model the post-processing limit chosen for its fold, nested, so that the protocol can
score the post-processed arm through ``voxmmsd segment`` itself.

    scripts/apply_nested_limits.py pieces/v3j out/pieces-v3jc out/eval/protocol/v3j/postprocess-components.json

``voxmmsd experiment crossval postprocess`` chooses one limit per fold on the *other* folds' held-out
predictions (``chosen_ml_per_fold`` of its record). Here ``SRC/fold<k>`` (a model package, e.g. a
kept piece, or a folder holding one as ``model``: a run, a cross-validation arm's fold) is copied to
``DEST/fold<k>`` with that limit written into the package's ``inference`` defaults
(``min_component_ml``, ``min_et_component_ml`` or ``min_et_ml``, by the record's kind); the weights are
copied unchanged (their checksum still holds). Then ``scripts/evaluate_default_model.sh`` (its step
``nested-pp``) segments every held-out case, clean and shifted, with its own fold's limit.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Any, Dict, List, Mapping

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("apply_nested_limits")


def fold_limits(records: List[Mapping[str, Any]]) -> List[Dict[str, float]]:
    """Per fold, the package ``inference`` keys and values the nested records chose."""
    from voxmmsd.errors import InputError
    from voxmmsd.experiment.cv_postprocess import KINDS

    per_fold: List[Dict[str, float]] = []
    for rec in records:
        kind = rec.get("kind")
        if kind not in KINDS:
            raise InputError(f"Not a post-processing record (kind {kind!r}): expected one of {sorted(KINDS)}.")
        chosen = [float(v) for v in rec["chosen_ml_per_fold"]]
        if per_fold and len(chosen) != len(per_fold):
            raise InputError(f"The records choose for {len(per_fold)} and {len(chosen)} folds: same splits?")
        if not per_fold:
            per_fold = [{} for _ in chosen]
        for k, value in enumerate(chosen):
            per_fold[k][KINDS[kind]] = value
    return per_fold


def main(argv: List[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", type=Path, help="folder of the fold models (SRC/fold0 ... each a model package)")
    p.add_argument("dest", type=Path, help="where the fold models with their limits go (DEST/fold0 ...)")
    p.add_argument("records", type=Path, nargs="+", help="postprocess*.json of `crossval postprocess`")
    args = p.parse_args(argv)
    from voxmmsd.errors import VoxMMSDError
    from voxmmsd.io.atomic import write_json
    from voxmmsd.models.package import MODEL_JSON, load_package, replace_folder

    try:
        limits = fold_limits([json.loads(r.read_text()) for r in args.records])
        for k, values in enumerate(limits):
            src = args.src / f"fold{k}"
            if (src / "model" / MODEL_JSON).is_file():  # a run folder (or an arm's fold folder)
                src = src / "model"
            meta = dict(load_package(src).meta)  # a readable package, weights matching their checksum
            meta["inference"] = {**meta.get("inference", {}), **values}
            dest = args.dest / f"fold{k}"
            tmp = dest.with_name(f".{dest.name}.tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            try:
                shutil.copytree(src, tmp)
                write_json(tmp / MODEL_JSON, meta)
                load_package(tmp)  # the limits in range (the package's own checks) before anything is replaced
                replace_folder(tmp, dest)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            log.info("fold%d: %s -> %s", k, values, dest)
    except (VoxMMSDError, KeyError, OSError, ValueError) as exc:
        log.error("error: %s", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "VoxMMSDSegmentation"))
    sys.exit(main(sys.argv[1:]))
