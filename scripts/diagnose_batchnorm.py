#!/usr/bin/env python
"""Does a model's BatchNorm running statistics explain its false enhancing tumour?

For each case, the network of a model package runs twice over the whole prepared brain crop
(the package's own preprocessing, no post-processing):

* ``eval``: BatchNorm with the running statistics stored in the package (what users get);
* ``recal``: BatchNorm statistics re-estimated on this very crop (one forward in training mode with
  cumulative averaging, dropout off), then the same eval pass.

If the second calls far less ET outside the reference (or far less ET overall) than the first,
the stored statistics do not fit whole-brain inputs: they came from small-patch batches with
augmented or dropped sequences. Prints one JSON line per case and model, and a summary.

    .venv/bin/python scripts/diagnose_batchnorm.py --model Resources/models/voxmmsd-brats-default \\
        --cases out/eval/protocol/data/UPENN-GBM-00006_11 ... [--shift out/eval/protocol/shift/zscore]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("diagnose_batchnorm")


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    s = int(a.sum()) + int(b.sum())
    return 1.0 if s == 0 else 2.0 * int((a & b).sum()) / s


def run_case(package, case_dir: Path) -> List[Dict[str, object]]:
    import torch
    from voxmmsd.io.discovery import find_case
    from voxmmsd.io.labels import detect_convention, to_internal
    from voxmmsd.io.reader import load_case
    from voxmmsd.nets.unet import VoxUNet
    from voxmmsd.nets.weights import load_into
    from voxmmsd.preprocessing import prepare, prepare_label

    files = find_case(case_dir)
    case = load_case(files)
    prep = prepare(case.image, case.geometry.spacing, package.preprocessing)
    lab = np.asarray(case.label, dtype=np.uint8)
    lab = to_internal(lab, detect_convention(np.unique(lab)) or "brats2023", files.label)
    ref = prepare_label(lab, prep)
    img = prep.image
    pad = [(0, (-s) % 16) for s in img.shape[1:]]
    x = torch.from_numpy(np.pad(img, [(0, 0)] + pad))[None]
    voxel_ml = float(np.prod(package.preprocessing.spacing or case.geometry.spacing)) / 1000.0
    out = []
    for mode in ("eval", "recal"):
        model = VoxUNet(package.unet_config())
        load_into(model, package.load_state_dict())
        model.float()
        if mode == "recal":
            for m in model.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.reset_running_stats()
                    m.momentum = None  # cumulative average over the passes below
                if isinstance(m, torch.nn.Dropout):
                    m.p = 0.0
            model.train()
            with torch.no_grad():
                model(x)
        model.eval()
        with torch.no_grad():
            logits = model(x)[0, :, :img.shape[1], :img.shape[2], :img.shape[3]]
        pred = logits.argmax(0).numpy().astype(np.uint8)
        et, ref_et = pred == 3, ref == 3
        wt, ref_wt = pred > 0, ref > 0
        out.append({"case": files.case_id, "mode": mode, "wt_ml": round(wt.sum() * voxel_ml, 1),
                    "ref_wt_ml": round(ref_wt.sum() * voxel_ml, 1), "et_ml": round(et.sum() * voxel_ml, 1),
                    "ref_et_ml": round(ref_et.sum() * voxel_ml, 1),
                    "et_outside_wt_ref_ml": round((et & ~ref_wt).sum() * voxel_ml, 1),
                    "snfh_as_et_ml": round((et & (ref == 2)).sum() * voxel_ml, 1),
                    "dice_wt": round(_dice(wt, ref_wt), 3), "dice_et": round(_dice(et, ref_et), 3)})
    return out


def main(argv: List[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True, help="model package folder")
    ap.add_argument("--cases", type=Path, nargs="+", required=True, help="labelled case folders")
    ap.add_argument("--out", type=Path, help="also write the rows here (JSON)")
    args = ap.parse_args(argv)
    from voxmmsd.models.package import load_package

    package = load_package(args.model)
    rows = []
    for c in args.cases:
        for r in run_case(package, c):
            r["model"] = f"{package.id}@{package.version}"
            rows.append(r)
            sys.stdout.write(json.dumps(r) + "\n")
    for mode in ("eval", "recal"):
        sel = [r for r in rows if r["mode"] == mode]
        sys.stdout.write(f"{mode}: mean Dice WT {np.mean([r['dice_wt'] for r in sel]):.3f} "
                         f"ET {np.mean([r['dice_et'] for r in sel]):.3f}; ET outside the reference tumour "
                         f"{np.sum([r['et_outside_wt_ref_ml'] for r in sel]):.1f} mL, oedema called ET "
                         f"{np.sum([r['snfh_as_et_ml'] for r in sel]):.1f} mL over {len(sel)} cases\n")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "VoxMMSDSegmentation"))
    sys.exit(main(sys.argv[1:]))
