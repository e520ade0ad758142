#!/usr/bin/env python
"""Re-package a fine-tuning run's model for shipping: float16 weights, ONNX, a name that says what it is.

  scripts/package_cpu_model.py RUN/model Resources/models/voxmmsd-brats-default/2.0.0 \
      --name "..." --description "..." [--metrics docs/results/crossval/summary.json] \
      [--version 2.1.0] [--inference min_component_ml=10] [--training-extra FILE.json]

The weights are rounded to float16 (computation stays float32) and both SHA-256 sums are
recorded in model.json, as for every package; the run's training record is kept.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping

ROOT = Path(__file__).resolve().parent.parent


def with_overrides(inference: Mapping[str, Any], items: List[str], fail: Callable[[str], Any]) -> Dict[str, Any]:
    """``inference`` with each ``KEY=VALUE`` of ``items`` (values read as YAML) set; ``fail`` reports a bad item."""
    import yaml

    out = dict(inference)
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            fail(f"--inference {item!r}: give KEY=VALUE")
        out[key.strip()] = yaml.safe_load(value)
    return out


def main(argv) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", type=Path, help="model package folder of a run (RUN/model)")
    p.add_argument("dest", type=Path)
    p.add_argument("--name", required=True)
    p.add_argument("--description", required=True)
    p.add_argument("--metrics", type=Path, help="JSON file whose content becomes model.json's metrics")
    p.add_argument("--version", help="the package's version (default: the run's package.version)")
    p.add_argument("--inference", action="append", default=[], metavar="KEY=VALUE",
                   help="an inference default of the package (value read as YAML), e.g. min_component_ml=10")
    p.add_argument("--training-extra", type=Path, help="JSON object merged into model.json's training record")
    args = p.parse_args(argv)
    from voxmmsd.models.package import load_package, save_package

    pkg = load_package(args.source)
    metrics = json.loads(args.metrics.read_text(encoding="utf-8")) if args.metrics else pkg.meta.get("metrics", {})
    inference = with_overrides(pkg.inference, args.inference, p.error)
    training = dict(pkg.meta.get("training", {}))
    if args.training_extra:
        training.update(json.loads(args.training_extra.read_text(encoding="utf-8")))
    save_package(args.dest, pkg.load_state_dict(), pkg.unet_config(), pkg.preprocessing, model_id=pkg.id,
                 version=args.version or pkg.version, sequences=pkg.sequences,
                 tolerates_missing=pkg.tolerates_missing, training=training, metrics=metrics, export_onnx=True,
                 description=args.description, name=args.name, license=pkg.meta.get("license", ""),
                 citation=pkg.meta.get("citation", ""), inference=inference, half_precision=True)
    out = load_package(args.dest)
    print(f"{out.summary()} -> {args.dest}: {json.dumps(out.meta['files'])}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "VoxMMSDSegmentation"))
    sys.exit(main(sys.argv[1:]))
