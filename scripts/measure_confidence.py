"""How unsure is a model on cases it does well on? The share of its predicted tumour under the confidence
threshold, per case, and the value to record as ``inference.typical_low_confidence`` in its model.json.

The per-case "Low confidence" warning (voxmmsd.infer.uncertainty) fires when a case's share is above
MAX_LOW_FRACTION and above this typical value plus a margin: a model that is unsure on every case (the CPU
reduced-scale 2.0.0) does not warn on every case, a confident one still warns on its outliers.

    python scripts/measure_confidence.py --model voxmmsd-brats-default@2.0.0 DATA_DIR [DATA_DIR ...]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np


def main() -> int:
    from voxmmsd.infer.batch import discover_cases
    from voxmmsd.infer.predictor import Predictor, PredictorConfig
    from voxmmsd.io.discovery import CaseFiles
    from voxmmsd.models.catalog import resolve_model

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", nargs="+", type=Path, help="folders of cases (skull-stripped, four sequences)")
    ap.add_argument("--model", required=True)
    ap.add_argument("--backend", default="onnx")
    ap.add_argument("--quantile", type=float, default=0.9, help="the typical value is this quantile of the shares")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    pkg = resolve_model(args.model)
    predictor = Predictor(pkg, PredictorConfig(backend=args.backend, skull_strip="off", register="off"))
    shares = {}
    for root in args.data:
        for entry in discover_cases(root):
            if not isinstance(entry, CaseFiles):
                continue
            pred = predictor.predict_files(entry)
            low = pred.uncertainty.get("low_confidence_fraction")
            if low is not None:
                shares[entry.case_id] = float(low)
                sys.stdout.write(f"{entry.case_id}\t{low:.4f}\n")
                sys.stdout.flush()
    values = np.asarray(list(shares.values()))
    out = {"model": pkg.summary(), "cases": len(values), "min": float(values.min()), "median": float(np.median(values)),
           "max": float(values.max()), "quantile": args.quantile,
           "typical_low_confidence": round(float(np.quantile(values, args.quantile)), 3)}
    sys.stdout.write(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
