"""End to end, real engine runs with a tiny network: a two-case synthetic cohort is fine-tuned from a model with
cross-validation against it, compared, installed; the same run under a stricter rule is refused (only the
comparison is redone), and installed with the override recorded. The fast checks of the parts are in
test_cohort_compare.py."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from voxmmsd import synthetic
from voxmmsd.cli.main import main

torch = pytest.importorskip("torch")


def tiny_start(folder: Path) -> Path:
    from voxmmsd.models.package import save_package
    from voxmmsd.nets.unet import UNetConfig, VoxUNet
    from voxmmsd.preprocessing import PreprocessConfig

    torch.manual_seed(0)
    cfg = UNetConfig(channels=(4, 8, 16, 32, 64))
    return save_package(folder, VoxUNet(cfg).state_dict(), cfg, PreprocessConfig(), model_id="tiny-start",
                        version="1.0.0", name="Tiny start", export_onnx=False,
                        inference={"patch_size": None, "overlap": 0.5, "tta": False, "min_component_ml": 0.01})


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 1.0 if not a.any() and not b.any() else 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


@pytest.mark.slow
@pytest.mark.timeout(3600)  # about 30 s of CPU; on a shared, loaded machine it may wait much longer
def test_two_case_cohort_finetunes_compares_installs_and_refuses(tmp_path: Path, monkeypatch, caplog, capsys):
    from voxmmsd.cohort.layout import case_ids, open_cohort
    from voxmmsd.infer.predictor import Predictor, PredictorConfig
    from voxmmsd.io.discovery import find_case
    from voxmmsd.metrics.evaluate import load_label
    from voxmmsd.models.package import load_package

    monkeypatch.setenv("VOXMMSD_HOME", str(tmp_path / "home"))
    data = synthetic.write_dataset(tmp_path / "data", n=2, seed=10)
    cohort = tmp_path / "cohort"
    for case in ("case000", "case001"):
        assert main(["-q", "cohort", "add", str(cohort), str(data / case), "--register", "off",
                     "--skull-strip", "off"]) == 0
    ids = case_ids(open_cohort(cohort))
    start = tiny_start(tmp_path / "start")
    run = tmp_path / "run"
    args = ["-q", "cohort", "finetune", str(cohort), "--out", str(run), "--model", str(start), "--max-iters", "5",
            "--set", "data.patch_size=[32,32,32]", "--set", "train.lr=0.003", "--device", "cpu"]
    assert main(args + ["--tolerance", "1.0"]) == 0

    plan = json.loads((run / "learn.json").read_text())
    assert plan["cases"] == ids and sorted(c for f in plan["folds"] for c in f) == ids and len(plan["folds"]) == 2
    # every fold's model was really fine-tuned from the start, on the other fold's case only
    start_w = load_package(start).load_state_dict()
    for k, held in enumerate(plan["folds"]):
        pkg = load_package(run / "folds" / f"fold{k}" / "model")
        assert pkg.meta["training"]["cases"]["train"] == [c for c in ids if c not in held]
        assert any(not torch.equal(v, start_w[n]) for n, v in pkg.load_state_dict().items())
        assert pkg.inference["min_component_ml"] == 0.01  # post-processed as the starting model is
    # the table: both models on every held-out case; the summary is the mean of the rows
    rows = list(csv.DictReader(open(run / "comparison.csv")))
    assert len(rows) == 2 * 2 * 3 and {r["model"] for r in rows} == {"start", "finetuned"}
    comparison = json.loads((run / "comparison.json").read_text())
    for model in ("start", "finetuned"):
        for region in ("WT", "TC", "ET"):
            vals = [float(r["dice"]) for r in rows if r["model"] == model and r["region"] == region]
            assert comparison["summary"][model][region]["dice"] == pytest.approx(np.mean(vals))
            err = [abs(float(r["volume_error_ml"])) for r in rows if r["model"] == model and r["region"] == region]
            assert comparison["summary"][model][region]["abs_volume_error_ml"] == pytest.approx(np.mean(err))
    # one score checked independently: the starting model on the first case, WT Dice from the label maps
    files = find_case(open_cohort(cohort).case_dir(ids[0]))
    pred = Predictor(load_package(start), PredictorConfig(device="cpu", uncertainty=False, skull_strip="off")) \
        .predict_files(files).label
    ref = load_label(files.label, "brats2023")[0]
    row = next(r for r in rows if r["model"] == "start" and r["case_id"] == ids[0] and r["region"] == "WT")
    assert float(row["dice"]) == pytest.approx(dice(np.isin(pred, (1, 2, 3)), np.isin(ref, (1, 2, 3))), abs=1e-6)
    assert comparison["decision"]["not_worse"] is True and comparison["cases"] == 2

    candidate = load_package(run / "final" / "model")
    assert candidate.meta["training"]["cohort"]["cases"] == 2
    assert candidate.meta["training"]["cases"]["train"] == ids and candidate.inference["min_component_ml"] == 0.01
    assert main(["-q", "cohort", "install", str(run)]) == 0
    capsys.readouterr()
    assert main(["-q", "models", "list"]) == 0
    listed = capsys.readouterr().out
    assert "tiny-start-local@1.0.0" in listed and "cohort of 2 cases" in listed and "vs start" in listed

    # the same run under a rule that asks for an impossible gain: nothing is trained again, it is refused
    stamps = {p: p.stat().st_mtime for p in run.rglob("weights.safetensors")}
    assert main(args + ["--tolerance", "-1.0"]) == 0
    assert {p: p.stat().st_mtime for p in run.rglob("weights.safetensors")} == stamps
    comparison = json.loads((run / "comparison.json").read_text())
    assert comparison["decision"]["not_worse"] is False
    caplog.clear()
    assert main(["-q", "cohort", "install", str(run)]) == 1
    assert "Not installed" in caplog.text and "--force" in caplog.text
    home = tmp_path / "home" / "models" / "tiny-start-local"
    assert sorted(p.name for p in home.iterdir()) == ["1.0.0"]
    assert main(["-q", "cohort", "install", str(run), "--force"]) == 0
    forced = load_package(home / "2.0.0")
    assert forced.meta["training"]["cohort"]["installed"]["override"] is True
    assert forced.meta["training"]["cohort"]["start_model"]["id"] == "tiny-start"
