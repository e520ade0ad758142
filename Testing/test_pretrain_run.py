"""Pre-training end to end: outputs, loss falls, weights load into fine-tuning, clear errors on bad input."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from voxmmsd import synthetic
from voxmmsd.cli.main import main
from voxmmsd.jobs.events import read_events
from voxmmsd.nets.unet import UNetConfig, VoxUNet
from voxmmsd.nets.weights import load_into, load_weights, read_metadata
from voxmmsd.pretrain.config import load_config
from voxmmsd.pretrain.dataset import IterationBatches
from voxmmsd.pretrain.loop import run_pretraining

TINY = ["network.channels=4,8,16,32,64", "data.patch_size=32,32,32", "method.block_size=8", "method.n_pairs=128",
        "method.out_dim=32", "data.workers=0", "train.log_every=1"]


def _pretrain(tmp_path: Path, data: Path, iterations: int, checkpoint_every: int) -> Path:
    run = tmp_path / "run"
    cfg = load_config(None, TINY + [f"data.root={data}", f"data.cache_dir={tmp_path / 'cache'}",
                                    "train.optimizer=adamw", "train.lr=3e-3", "train.lr_end=1e-3",
                                    f"train.iterations={iterations}", f"train.checkpoint_every={checkpoint_every}"])
    assert run_pretraining(cfg, run, show_progress=False) == 0
    return run


def _losses(run: Path, name: str) -> np.ndarray:
    return np.array([e["losses"][name] for e in read_events(run / "events.jsonl")
                     if e["event"] == "progress" and e["stage"] == "pretrain"])


@pytest.mark.slow  # 30 iterations; the default run has the 4-iteration smoke test below
def test_reconstruction_loss_falls(tmp_path, synthetic_dataset):
    recon = _losses(_pretrain(tmp_path, synthetic_dataset, 30, 20), "recon")
    assert len(recon) == 30 and recon[-6:].mean() < 0.9 * recon[:6].mean()


def test_outputs_are_written_and_the_backbone_loads(tmp_path, synthetic_dataset):
    """Smoke test of a run (its learning: the slow test above and test_pretrain_learning.py)."""
    run = _pretrain(tmp_path, synthetic_dataset, 4, 2)
    for name in ("config.yaml", "events.jsonl", "log.txt", "loss.png", "backbone.safetensors", "checkpoints/last.pt"):
        assert (run / name).is_file(), name
    assert list((run / "tensorboard").iterdir())
    events = read_events(run / "events.jsonl")
    kinds = [e["event"] for e in events if e["stage"] == "pretrain"]
    assert kinds[0] == "start" and kinds[-1] == "done" and kinds.count("checkpoint") >= 2
    assert any(e["stage"] == "preprocess" for e in events)
    prog = [e for e in events if e["event"] == "progress" and e["stage"] == "pretrain"]
    assert [e["iteration"] for e in prog] == [1, 2, 3, 4]
    assert all({"loss", "distill", "recon"} <= set(e["losses"]) and "lr" in e and "eta_s" in e for e in prog)
    assert np.all(np.isfinite(_losses(run, "loss")))
    # the backbone loads into a fresh U-Net (fine-tuning's starting point), strictly
    state, meta = load_weights(run / "backbone.safetensors")
    assert meta["kind"] == "voxmmsd-pretrained-backbone" and meta["iteration"] == 4
    net = VoxUNet(UNetConfig.from_dict(meta["network"]))
    report = load_into(net, state, strict=True)
    assert not report.skipped and not report.missing
    assert "encoder.in_conv.conv_conv.0.weight" in state and "decoder.up1.conv1x1.weight" in state
    ckpt = torch.load(str(run / "checkpoints" / "last.pt"), weights_only=True)
    assert ckpt["iteration"] == 4 and ckpt["config"]["data"]["patch_size"] == [32, 32, 32]
    assert torch.equal(ckpt["student"]["backbone.encoder.in_conv.conv_conv.0.weight"],
                       state["encoder.in_conv.conv_conv.0.weight"])
    assert read_metadata(run / "backbone.safetensors")["network"]["channels"] == [4, 8, 16, 32, 64]


def test_batches_of_ranks_are_disjoint_and_resume_where_they_stopped():
    r0 = list(IterationBatches(0, 5, 2, 0, 2))
    r1 = list(IterationBatches(0, 5, 2, 1, 2))
    flat0 = {i for b in r0 for i in b}
    flat1 = {i for b in r1 for i in b}
    assert not flat0 & flat1 and flat0 | flat1 == set(range(20))
    assert list(IterationBatches(3, 5, 2, 0, 2)) == r0[3:]


def _cli(args, caplog) -> str:
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert main(["pretrain", "--no-progress"] + args) == 1
    return caplog.text


def test_bad_input_gets_a_clear_message(tmp_path, caplog):
    common = ["--cache", str(tmp_path / "cache"), "--max-iters", "2"] + [x for s in TINY for x in ("--set", s)]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "No cases found" in _cli(["--data", str(empty), "--out", str(tmp_path / "r1")] + common, caplog)

    data = tmp_path / "data"
    synthetic.write_dataset(data, n=2)
    missing = next(p for p in (data / "case001").iterdir() if "t2f" in p.name)
    missing.unlink()
    text = _cli(["--data", str(data), "--out", str(tmp_path / "r2")] + common, caplog)
    assert "case001" in text and "T2-FLAIR" in text

    ok = tmp_path / "ok"
    synthetic.write_dataset(ok, n=2)
    text = _cli(["--data", str(ok), "--out", str(tmp_path / "r3")] + common + ["--set", "data.patch_size=96,96,96"],
                caplog)
    assert "larger than" in text and "data.patch_size=" in text

    # a damaged cache file
    cache = tmp_path / "cache2"
    assert main(["pretrain", "--no-progress", "--data", str(ok), "--out", str(tmp_path / "r4"), "--cache", str(cache),
                 "--max-iters", "1", "--set", "train.tensorboard=false"] + [x for s in TINY for x in ("--set", s)]) == 0
    npy = next(cache.rglob("*.image.npy"))
    npy.write_bytes(b"not a numpy file")
    text = _cli(["--data", str(ok), "--out", str(tmp_path / "r5"), "--cache", str(cache), "--max-iters", "1"]
                + [x for s in TINY for x in ("--set", s)], caplog)
    assert "damaged" in text and str(npy.parent) in text

    assert "does not exist" in _cli(["--resume", str(tmp_path / "nothing")], caplog)
    assert "--resume" in _cli(["--data", str(ok), "--out", str(tmp_path / "r4")] + common, caplog)
    assert "Unknown setting" in _cli(["--data", str(ok), "--out", str(tmp_path / "r6"), "--set", "lrr=1"], caplog)
    events = read_events(tmp_path / "r4" / "events.jsonl")
    assert json.loads(json.dumps(events[-1]))["event"] == "done"
    assert isinstance(Path, type)
