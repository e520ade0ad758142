#!/usr/bin/env python
"""How much of a model's enhancing tumour comes from the contrast image? (model card, issue 24 item 2)

ET is defined by contrast enhancement: T1c bright where T1n is not. A model that has learnt that keeps
little ET when the T1c image is replaced by the T1n image (no enhancement anywhere); a model that calls
ET from FLAIR/T2 texture (what oedema -> ET looks like) keeps much of it. For each case and model:

  ET mL on the case as it is (from an existing prediction folder), ET mL on the case with T1c := T1n,
  the ratio (kept fraction), and the ET mL inside the reference oedema (SNFH) in both.

  scripts/probe_contrast_reliance.py --data out/eval/protocol/data --cases A,B,C \
      --arm b100=Resources/models/voxmmsd-brats-default/1.0.0:out/eval/protocol/b100/pred \
      --arm w210=Resources/models/voxmmsd-brats-default/2.1.0:out/eval/protocol/w210/pred \
      --work /work/runs/probe --out docs/results/v3b/contrast_reliance.json

Segmentation goes through the product (`voxmmsd segment --batch`); nothing here re-implements it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "VoxMMSDSegmentation"))
log = logging.getLogger("probe_contrast")


def no_enhancement_case(case_dir: Path, dest: Path) -> None:
    """``dest``: links to every file of the case, the T1c file replaced by the T1n image scaled by 1.01
    (a file of its own: the product refuses one image given as two sequences; every normalisation it
    has is scale-free, so the scale changes nothing but the bytes)."""
    import numpy as np
    import SimpleITK as sitk
    from voxmmsd.io.discovery import find_case

    case = find_case(case_dir)
    dest.mkdir(parents=True, exist_ok=True)
    t1c = case.sequences["t1c"].resolve()
    for f in sorted(case_dir.iterdir()):
        link = dest / f.name
        if link.is_symlink() or link.exists():
            continue
        if f.resolve() != t1c:
            link.symlink_to(f.resolve())
            continue
        img = sitk.ReadImage(str(case.sequences["t1n"]))
        arr = sitk.GetArrayFromImage(img).astype(np.float32) * np.float32(1.01)
        out = sitk.GetImageFromArray(arr)
        out.CopyInformation(img)
        sitk.WriteImage(out, str(link), True)


def et_volumes(pred: Path, ref: Path) -> Dict[str, float]:
    """ET mL of ``pred`` (the product's output, internal labels) overall and inside the reference's oedema."""
    import numpy as np
    from voxmmsd.metrics.evaluate import load_label

    pa, geom, _ = load_label(pred, "brats2023", "prediction")
    ra, _, _ = load_label(ref)
    ml = float(np.prod(geom.spacing)) / 1000.0
    et = pa == 3
    return {"et_ml": round(float(et.sum()) * ml, 2),
            "et_in_oedema_ml": round(float((et & (ra == 2)).sum()) * ml, 2),
            "ref_et_ml": round(float((ra == 3).sum()) * ml, 2)}


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="folder of case folders (with labels)")
    ap.add_argument("--cases", required=True, help="comma-separated case ids")
    ap.add_argument("--arm", action="append", required=True,
                    help="NAME=MODEL:PRED_DIR (PRED_DIR holds <case>/segmentation.nii.gz for the case as it is)")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from voxmmsd.io.discovery import find_case

    cases = [c for c in a.cases.split(",") if c]
    inputs = a.work / "inputs"
    for c in cases:
        no_enhancement_case(a.data / c, inputs / c)
    vx = [sys.executable, "-m", "voxmmsd"]
    rows = []
    for arm in a.arm:
        name, rest = arm.split("=", 1)
        model, pred_dir = rest.rsplit(":", 1)
        out = a.work / name
        env = dict(os.environ, PYTHONPATH=str(ROOT / "VoxMMSDSegmentation"))
        subprocess.run(vx + ["-q", "segment", "--batch", str(inputs), "--out", str(out), "--model", model,
                             "--device", "cpu", "--progress", "none", "--no-qc"], check=True, env=env)
        for c in cases:
            ref = find_case(a.data / c).label
            assert ref is not None, c
            clean = et_volumes(Path(pred_dir) / c / "segmentation.nii.gz", ref)
            plain = et_volumes(out / c / "segmentation.nii.gz", ref)
            kept = plain["et_ml"] / clean["et_ml"] if clean["et_ml"] > 0 else None
            rows.append({"arm": name, "case": c, "ref_et_ml": clean["ref_et_ml"],
                         "et_ml": clean["et_ml"], "et_ml_no_contrast": plain["et_ml"],
                         "et_kept": None if kept is None else round(kept, 3),
                         "et_in_oedema_ml": clean["et_in_oedema_ml"],
                         "et_in_oedema_ml_no_contrast": plain["et_in_oedema_ml"]})
            log.info("%s %s: ET %.1f -> %.1f mL without contrast (in oedema %.1f -> %.1f)", name, c,
                     clean["et_ml"], plain["et_ml"], clean["et_in_oedema_ml"], plain["et_in_oedema_ml"])
    summary = {}
    for name in sorted({r["arm"] for r in rows}):
        mine = [r for r in rows if r["arm"] == name]
        tot, kept = sum(r["et_ml"] for r in mine), sum(r["et_ml_no_contrast"] for r in mine)
        summary[name] = {"et_ml": round(tot, 1), "et_ml_no_contrast": round(kept, 1),
                         "kept_fraction": round(kept / tot, 3) if tot else None,
                         "et_in_oedema_ml": round(sum(r["et_in_oedema_ml"] for r in mine), 1),
                         "et_in_oedema_ml_no_contrast": round(sum(r["et_in_oedema_ml_no_contrast"] for r in mine), 1)}
        log.info("%s: %s", name, summary[name])
    a.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = a.out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"cases": cases, "summary": summary, "rows": rows}, indent=1))
    tmp.replace(a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
