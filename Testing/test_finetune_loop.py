"""The fine-tuning loop in process: learning, run folder, model package, --init recorded, warm-up."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from support.training import TINY_SETTINGS
from voxmmsd.finetune.config import load_config
from voxmmsd.finetune.loop import finetune
from voxmmsd.jobs.events import read_events
from voxmmsd.models.package import load_package
from voxmmsd.nets.unet import VoxUNet
from voxmmsd.nets.weights import save_weights


@pytest.mark.slow  # 120 iterations; the default run has the 4-iteration smoke test below
def test_dice_rises_above_the_untrained_network(synthetic_dataset: Path, tmp_path: Path) -> None:
    cfg = load_config(None, TINY_SETTINGS + ["train.iterations=120", "train.epoch_iters=60",
                                             "validation.at_start=true", "package.onnx=false"])
    result = finetune(synthetic_dataset, tmp_path / "run", cfg, device="cpu")
    assert result.status == "done" and result.iteration == 120
    untrained = result.history[0]
    assert untrained["iteration"] == 0 and untrained["loss"] is None
    assert result.best["dice"] > untrained["val_mean"] + 0.1, result.history
    assert result.best["regions"]["WT"] > untrained["val_WT"] + 0.2, result.history


def test_a_short_run_writes_its_folder_and_a_package_of_its_best_weights(synthetic_dataset: Path,
                                                                         tmp_path: Path) -> None:
    """Smoke test of the loop (the learning itself: the slow test above): 4 iterations, 2 epochs, validation
    before and after each, the ONNX export; every output file, and the package holds the best checkpoint."""
    cfg = load_config(None, TINY_SETTINGS + ["train.iterations=4", "train.epoch_iters=2",
                                             "validation.at_start=true", "package.onnx=true"])
    run = tmp_path / "run"
    result = finetune(synthetic_dataset, run, cfg, device="cpu")
    assert result.status == "done" and result.iteration == 4
    assert [h["iteration"] for h in result.history] == [0, 2, 4] and result.history[0]["loss"] is None
    assert all(0.0 <= h["val_mean"] <= 1.0 for h in result.history)

    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [int(r["iteration"]) for r in rows] == [0, 2, 4]
    assert (run / "loss.png").stat().st_size > 1000 and (run / "log.txt").read_text()
    assert any((run / "tensorboard").iterdir())
    assert load_config(run / "config.yaml") == cfg

    pkg = load_package(run / "model")  # schema-validated, checksums verified
    assert pkg.id == cfg.package.model_id and pkg.onnx_path is not None and not pkg.tolerates_missing
    best = torch.load(str(run / "checkpoints" / "best.pt"), weights_only=True)
    assert best["iteration"] == result.best["iteration"]
    weights = pkg.load_state_dict()
    for k, v in weights.items():
        assert torch.equal(v, best["model"][k]), k
    assert pkg.meta["metrics"]["validation_mean_dice"] == pytest.approx(result.best["dice"])

    events = read_events(run / "events.jsonl")
    kinds = [(e["stage"], e["event"]) for e in events]
    assert kinds[0][0] == "preprocess" and ("finetune", "start") in kinds and kinds[-1] == ("finetune", "done")
    assert sum(1 for k in kinds if k == ("validate", "validation")) == 3
    prog = [e for e in events if e["event"] == "progress" and e["stage"] == "finetune"]
    assert [e["iteration"] for e in prog] == [1, 2, 3, 4]
    assert set(prog[-1]["losses"]) == {"loss", "dice", "ce"} and "eta_s" in prog[-1]
    assert all(np.isfinite(e["losses"]["loss"]) for e in prog)
    assert events[-1]["outputs"]["model"] == str(run / "model")


def test_init_from_a_pretraining_run_is_recorded_and_warms_up(synthetic_dataset: Path, tmp_path: Path) -> None:
    base = load_config(None, TINY_SETTINGS)
    torch.manual_seed(5)
    donor = VoxUNet(base.network)
    state = dict(donor.state_dict())
    state["head.last.weight"] = torch.zeros(3, 3)
    # pre-trained on other inputs (3 mm, percentile scaling): fine-tuning says so in its log
    save_weights(state, tmp_path / "pre" / "backbone.safetensors",
                 {"preprocessing": {"percentile": 99.9, "crop_margin": 2, "spacing": [3.0, 3.0, 3.0]}})
    cfg = load_config(None, TINY_SETTINGS + ["train.iterations=3", "train.epoch_iters=3", "train.lr_warmup=1.0",
                                             "data.val=0", f"init.path={tmp_path / 'pre'}"])
    run = tmp_path / "run"
    result = finetune(synthetic_dataset, run, cfg, device="cpu")
    events = read_events(run / "events.jsonl")
    start = next(e for e in events if e["event"] == "start")
    n = len(donor.state_dict())
    assert start["init"]["loaded"] == n - 2
    assert "no such parameter" in start["init"]["skipped"]["head.last.weight"]
    assert "re-initialised" in start["init"]["skipped"]["decoder.out_conv.bias"]
    assert "tensors loaded" in start["message"]
    log_text = (run / "log.txt").read_text()
    assert "loaded %d tensors" % (n - 2) in log_text
    assert "was trained on other inputs: voxel spacing 3x3x3 mm in the weights" in log_text
    lrs = [e["lr"] for e in events if e["event"] == "progress" and e["stage"] == "finetune"]
    assert lrs[0] == pytest.approx(cfg.train.lr * 0.01) and lrs[0] < lrs[1] < lrs[2] < cfg.train.lr
    assert result.package is not None and not (run / "checkpoints" / "best.pt").exists()  # no validation
    assert load_package(run / "model").load_state_dict()["encoder.in_conv.conv_conv.0.weight"].shape[0] == 4
