"""scripts/apply_nested_limits.py: each fold model gets the limit its fold's nested choice picked, read back
by the predictor as its default; weights untouched; bad records refused without writing anything."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from support.packages import build_tiny_package
from voxmmsd.models.package import load_package

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "apply_nested_limits.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env,
                          timeout=300, cwd=ROOT)


def _record(path: Path, kind: str, chosen) -> Path:
    path.write_text(json.dumps({"kind": kind, "chosen_ml_per_fold": chosen}))
    return path


def test_each_fold_gets_its_own_limits(tmp_path):
    src = tmp_path / "pieces"
    for k in range(3):  # fold 2 as a run folder (its package in model/), the others as kept pieces
        folder = src / f"fold{k}" / "model" if k == 2 else src / f"fold{k}"
        build_tiny_package(folder, seed=k, export_onnx=False, inference={"overlap": 0.25})
    comp = _record(tmp_path / "postprocess-components.json", "components", [0.0, 5.0, 2.0])
    etc = _record(tmp_path / "postprocess-et-components.json", "et-components", [1.0, 0.0, 0.5])
    done = _run(str(src), str(tmp_path / "out"), str(comp), str(etc))
    assert done.returncode == 0, done.stderr
    for k, (c, e) in enumerate([(0.0, 1.0), (5.0, 0.0), (2.0, 0.5)]):
        pkg = load_package(tmp_path / "out" / f"fold{k}")  # checksums still hold
        assert pkg.inference["min_component_ml"] == c and pkg.inference["min_et_component_ml"] == e
        assert pkg.inference["overlap"] == 0.25  # the package's other defaults kept
        origin = src / f"fold{k}" / "model" if k == 2 else src / f"fold{k}"
        assert (tmp_path / "out" / f"fold{k}" / "weights.safetensors").read_bytes() == \
            (origin / "weights.safetensors").read_bytes()
    assert "min_component_ml" not in load_package(src / "fold1").inference  # the source untouched


def test_records_of_other_splits_are_refused(tmp_path):
    src = tmp_path / "pieces"
    for k in range(2):
        build_tiny_package(src / f"fold{k}", seed=k, export_onnx=False)
    a = _record(tmp_path / "a.json", "components", [0.0, 5.0])
    b = _record(tmp_path / "b.json", "et-components", [0.0, 1.0, 2.0])
    done = _run(str(src), str(tmp_path / "out"), str(a), str(b))
    assert done.returncode == 2 and "folds" in done.stderr
    assert not (tmp_path / "out").exists()
    bad = _record(tmp_path / "c.json", "dilate", [0.0, 1.0])
    done = _run(str(src), str(tmp_path / "out"), str(bad))
    assert done.returncode == 2 and "dilate" in done.stderr
