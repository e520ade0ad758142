"""``voxmmsd experiment crossval`` end to end: a warm-start comparison never scores a case the starting model
was trained on, and the paired comparison, the uncertainty ranking and the nested component filter run on what
is left; the deprecated scripts/crossval.py forwards to the command. A fold model trains in the slow test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.packages import build_tiny_package
from voxmmsd import synthetic
from voxmmsd.cli.main import main

ROOT = Path(__file__).resolve().parent.parent


def _process(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def _cases(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    for i in range(4):
        synthetic.write_case(data / f"case{i}", f"case{i}", seed=i, geometry=synthetic.default_geometry((40, 44, 32)))
    splits = tmp_path / "splits.json"
    splits.write_text(json.dumps({"k": 2, "seed": 0, "folds": [["case0", "case1"], ["case2", "case3"]],
                                  "sources": {f"case{i}": ("a" if i % 2 else "b") for i in range(4)}}))
    return data


def test_warm_start_arm_excludes_the_cases_its_model_saw(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = _cases(tmp_path)
    pkg = build_tiny_package(tmp_path / "start", export_onnx=False,
                             training={"data": "synthetic", "training_cases": ["case1"]})
    cv = tmp_path / "cv"
    common = ["--data", str(data), "--splits", str(tmp_path / "splits.json"), "--out", str(cv)]
    seen = ["--exclude-seen-by", str(pkg)]
    # the command as a user runs it (its own process), then the same again in this process
    _process("-m", "voxmmsd", "experiment", "crossval", "run", *common, "--name", "base", "--model", str(pkg), *seen)
    assert main(["experiment", "crossval", "run", *common, "--name", "again", "--model", str(pkg), *seen]) == 0
    for name in ("base", "again"):
        preds = sorted(p.name for p in (cv / name / "pred").iterdir() if p.is_dir())
        assert preds == ["case0", "case2", "case3"]  # case1 trained the starting model: never held out
        timings = json.loads((cv / name / "timings.json").read_text())
        assert set(timings) == {"fold0_segment_s", "fold1_segment_s"}  # a fixed model: nothing trained
        assert main(["experiment", "crossval", "score", *common, "--name", name, *seen]) == 0
        summary = json.loads((cv / name / "eval" / "crossval.json").read_text())
        assert summary["excluded"] == ["case1"] and summary["summary"]["WT"]["dice"]["n"] == 3
    variant = tmp_path / "variant"  # e.g. simulated thick slices: the same ids, segmented by their fold's model
    variant.mkdir()
    for c in ("case1", "case2"):
        (variant / c).symlink_to(data / c, target_is_directory=True)
    assert main(["experiment", "crossval", "variant", "--variant", str(variant), "--pred-name", "pred-v",
                 "--splits", str(tmp_path / "splits.json"), "--out", str(cv), "--name", "base",
                 "--model", str(pkg), *seen]) == 0
    assert sorted(p.name for p in (cv / "base" / "pred-v").iterdir() if p.is_dir()) == ["case2"]  # case1 excluded
    log = (cv / "base" / "log.txt").read_text()
    assert log.count("$ voxmmsd segment --batch") == 3 and "--model " + str(pkg) in log
    capsys.readouterr()
    assert main(["experiment", "crossval", "compare", "--out", str(cv), "--json", str(tmp_path / "cmp.json"),
                 "base", "again"]) == 0
    cmp = json.loads((tmp_path / "cmp.json").read_text())
    assert cmp["dice"]["WT"]["n"] == 3 and cmp["dice"]["WT"]["mean_diff"] == 0.0  # the same model twice
    assert "| dice | WT | 3 |" in capsys.readouterr().out
    assert main(["experiment", "crossval", "uncertainty", "--out", str(cv), "--name", "base"]) == 0
    unsure = json.loads(capsys.readouterr().out)
    assert unsure["cases"] == 3 and 0.0 <= unsure["low_confidence_fraction"]["min"] <= 1.0
    assert main(["experiment", "crossval", "postprocess", *common, "--name", "base", *seen, "--kind", "components",
                 "--limits", "0,0.1", "--write"]) == 0
    record = json.loads((cv / "base" / "postprocess-components.json").read_text())
    assert len(record["chosen_ml_per_fold"]) == 2 and set(record["per_case_applied"]) == {"case0", "case2", "case3"}
    assert sorted(p.name for p in (cv / "base" / "pred-pp-components").iterdir()) == ["case0", "case2", "case3"]
    # the deprecated script: the same command, with a note
    done = _process("scripts/crossval.py", "table", "--out", str(cv), "base", "again")
    assert "deprecated" in done.stderr and "| base | WT |" in done.stdout and "| again | ET |" in done.stdout


@pytest.mark.slow
def test_run_trains_each_fold_model_once(tmp_path: Path) -> None:
    data = _cases(tmp_path)
    cv = tmp_path / "cv"
    tiny = ["network.channels=[4,8,16,32,64]", "data.patch_size=[32,32,32]", "data.batch_size=2",
            "train.iterations=2", "train.epoch_iters=2", "package.onnx=false"]
    args = ["experiment", "crossval", "run", "--data", str(data), "--splits", str(tmp_path / "splits.json"),
            "--out", str(cv), "--name", "r", "--folds", "1"] + [a for s in tiny for a in ("--set", s)]
    assert main(args) == 0
    model = json.loads((cv / "r" / "fold1" / "model" / "model.json").read_text())
    assert sorted(model["training"]["cases"]["train"]) == ["case0", "case1"]  # the other fold only
    assert sorted(p.name for p in (cv / "r" / "pred").iterdir() if p.is_dir()) == ["case2", "case3"]
    assert main(args) == 0  # again: the finished fold model is kept
    assert (cv / "r" / "log.txt").read_text().count("$ voxmmsd finetune") == 1
    assert main(args[:-len(tiny) * 2] + ["--folds", "7"]) == 1  # no such fold: a clear error
