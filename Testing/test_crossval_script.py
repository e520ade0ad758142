"""scripts/crossval.py end to end with real processes: a warm-start comparison never scores a case the
starting model was trained on, and the paired comparison and the nested component filter run on what is left."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from support.packages import build_tiny_package
from voxmmsd import synthetic

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "crossval.py"


def _run(*args: str) -> str:
    env = dict(os.environ, VOXMMSD=str(Path(sys.executable).parent / "voxmmsd"), OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_warm_start_arm_excludes_the_cases_its_model_saw(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ids = [f"case{i}" for i in range(4)]
    for i, c in enumerate(ids):
        synthetic.write_case(data / c, c, seed=i, geometry=synthetic.default_geometry((40, 44, 32)))
    pkg = build_tiny_package(tmp_path / "start", export_onnx=False,
                             training={"data": "synthetic", "training_cases": ["case1"]})
    splits = tmp_path / "splits.json"
    splits.write_text(json.dumps({"k": 2, "seed": 0, "folds": [["case0", "case1"], ["case2", "case3"]],
                                  "sources": {c: ("a" if i % 2 else "b") for i, c in enumerate(ids)}}))
    common = ["--data", str(data), "--splits", str(splits), "--out", str(tmp_path / "cv")]
    for name in ("base", "again"):
        _run("run", *common, "--name", name, "--model", str(pkg), "--exclude-seen-by", str(pkg))
        preds = sorted(p.name for p in (tmp_path / "cv" / name / "pred").iterdir() if p.is_dir())
        assert preds == ["case0", "case2", "case3"]  # case1 trained the starting model: never held out
        _run("score", *common, "--name", name, "--exclude-seen-by", str(pkg))
        summary = json.loads((tmp_path / "cv" / name / "eval" / "crossval.json").read_text())
        assert summary["excluded"] == ["case1"] and summary["summary"]["WT"]["dice"]["n"] == 3
    out = _run("compare", "--out", str(tmp_path / "cv"), "--json", str(tmp_path / "cmp.json"), "base", "again")
    cmp = json.loads((tmp_path / "cmp.json").read_text())
    assert cmp["dice"]["WT"]["n"] == 3 and cmp["dice"]["WT"]["mean_diff"] == 0.0  # the same model twice
    assert "| dice | WT | 3 |" in out
    unsure = json.loads(_run("uncertainty", "--out", str(tmp_path / "cv"), "--name", "base"))
    assert unsure["cases"] == 3 and 0.0 <= unsure["low_confidence_fraction"]["min"] <= 1.0
    _run("postprocess", *common, "--name", "base", "--exclude-seen-by", str(pkg), "--kind", "components",
         "--limits", "0,0.001", "--write")
    record = json.loads((tmp_path / "cv" / "base" / "postprocess-components.json").read_text())
    assert len(record["chosen_ml_per_fold"]) == 2 and set(record["per_case_applied"]) == {"case0", "case2", "case3"}
    assert sorted(p.name for p in (tmp_path / "cv" / "base" / "pred-pp-components").iterdir()) == \
        ["case0", "case2", "case3"]
