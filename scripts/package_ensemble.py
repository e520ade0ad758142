#!/usr/bin/env python
"""Package the fold models of a cross-validation as one fold-ensemble model (voxmmsd.nets.ensemble).

  scripts/package_ensemble.py out/train-v3/fold{0,1,2,3,4}/model Resources/models/voxmmsd-brats-default \
      --version 3.0.0 --name "..." --description "..." [--metrics FILE.json] [--inference KEY=VALUE]

Every member must have the same network, preprocessing and sequences. The package's weights hold
each member under ``members.<i>.`` (float16, computation float32), its ONNX file the whole
ensemble (one graph: members run one after another, probabilities averaged), and its training
record the union of the members' training cases (so ``--exclude-seen-by`` keeps all of them out of
any later held-out set) and each member's own record.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import List

ROOT = Path(__file__).resolve().parent.parent


def main(argv: List[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("members", type=Path, nargs="+", help="model package folders (RUN/model), in fold order")
    p.add_argument("dest", type=Path)
    p.add_argument("--version", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--description", required=True)
    p.add_argument("--metrics", type=Path, help="JSON file whose content becomes model.json's metrics")
    p.add_argument("--inference", action="append", default=[], metavar="KEY=VALUE",
                   help="an inference default of the package (value read as YAML)")
    p.add_argument("--training-extra", type=Path, help="JSON object merged into model.json's training record")
    args = p.parse_args(argv)
    if len(args.members) < 2:
        p.error("an ensemble needs at least two member packages")
    import dataclasses

    from package_cpu_model import with_overrides
    from voxmmsd.models.package import load_package, save_package
    from voxmmsd.nets.ensemble import ensemble_state

    pkgs = [load_package(m) for m in args.members]
    first = pkgs[0]
    for pkg, path in zip(pkgs[1:], args.members[1:]):
        if (pkg.unet_config() != first.unet_config() or pkg.preprocessing != first.preprocessing
                or pkg.sequences != first.sequences):
            p.error(f"{path} differs from {args.members[0]} in network, preprocessing or sequences")
    kinds = {str(pkg.inference.get("output", "classes")) for pkg in pkgs}
    if kinds != {"classes"}:  # FoldEnsemble averages softmax probabilities; sigmoid regions would need their own
        p.error(f"members give {sorted(kinds)} outputs; only class-output (softmax) models can be averaged here")
    network = dataclasses.replace(first.unet_config(), members=len(pkgs))
    state = ensemble_state([pkg.load_state_dict() for pkg in pkgs])
    inference = with_overrides(first.inference, args.inference, p.error)
    records = [dict(pkg.meta.get("training", {})) for pkg in pkgs]
    seen = sorted({c for r in records for c in (r.get("cases", {}) or {}).get("train", [])})
    training = {"kind": "fold ensemble", "members": len(pkgs), "training_cases": seen,
                "member_records": [{k: v for k, v in r.items() if k != "config"} for r in records],
                "member_config": records[0].get("config")}
    if args.training_extra:
        training.update(json.loads(args.training_extra.read_text(encoding="utf-8")))
    metrics = json.loads(args.metrics.read_text(encoding="utf-8")) if args.metrics else {}
    save_package(args.dest, state, network, first.preprocessing, model_id=first.id, version=args.version,
                 sequences=first.sequences, tolerates_missing=first.tolerates_missing, training=training,
                 metrics=metrics, export_onnx=True, description=args.description, name=args.name,
                 license=first.meta.get("license", "research use only"), citation=first.meta.get("citation", ""),
                 inference=inference, half_precision=True)
    print(f"fold ensemble of {len(pkgs)} written to {args.dest}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "VoxMMSDSegmentation"))
    sys.exit(main(sys.argv[1:]))
