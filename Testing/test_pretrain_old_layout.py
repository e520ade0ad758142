"""Pre-training's settings moved into fine-tuning's sections (``data``, ``train``) and ``method``.

The flat names of earlier versions (``lr``, ``crop_size``, ``data``, ``cache``, ...) still load
from YAML files, ``--set`` and the config.yaml and checkpoints of existing runs, with one
:class:`RenamedSettingWarning` per source; a run saved with the flat layout resumes.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any, Dict

import pytest
import yaml
from voxmmsd.cli.main import main
from voxmmsd.errors import ConfigError
from voxmmsd.finetune.config import DataConfig, TrainConfig
from voxmmsd.jobs.checkpoint import load_checkpoint, save_checkpoint
from voxmmsd.jobs.config import resume_config
from voxmmsd.jobs.events import read_events
from voxmmsd.jobs.renamed import RenamedSettingWarning
from voxmmsd.pretrain.config import PretrainConfig, load_config
from voxmmsd.pretrain.loop import run_pretraining

TINY = ["network.channels=4,8,16,32,64", "data.patch_size=32,32,32", "method.block_size=8", "method.n_pairs=64",
        "method.out_dim=32", "data.workers=0", "train.log_every=1", "train.deterministic=true",
        "train.tensorboard=false", "train.optimizer=adamw"]


def flat(settings: Dict[str, Any]) -> Dict[str, Any]:
    """The layout pre-training wrote before 2026-12-07, written out by hand: data, train and method settings at the
    top level, ``data.root`` as ``data``, ``data.cache_dir`` as ``cache`` and ``data.patch_size`` as ``crop_size``."""
    old_names = {"root": "data", "cache_dir": "cache", "patch_size": "crop_size"}
    out = {k: v for k, v in settings.items() if k not in ("data", "train", "method")}
    for section in ("data", "train", "method"):
        for key, value in settings[section].items():
            out[old_names.get(key, key)] = value
    return out


def test_shared_settings_have_fine_tunings_names() -> None:
    """Every setting of pre-training's data and train sections that fine-tuning also has is spelled the same."""
    pre, fine = PretrainConfig().to_dict(), {"data": DataConfig.__annotations__, "train": TrainConfig.__annotations__}
    for section in ("data", "train"):
        shared = set(pre[section]) & set(fine[section])
        assert len(shared) >= {"data": 5, "train": 11}[section], shared
    assert {"root", "cache_dir", "patch_size", "batch_size", "workers"} <= set(pre["data"])
    assert {"iterations", "lr", "lr_end", "lr_warmup", "weight_decay", "precision", "seed", "log_every"} \
        <= set(pre["train"])
    assert PretrainConfig.RUN_LENGTH == "train.iterations"


def test_flat_yaml_and_set_load_with_one_warning(tmp_path: Path) -> None:
    f = tmp_path / "old.yaml"
    f.write_text(yaml.safe_dump({"data": "/cases", "cache": "/cache", "crop_size": [64, 64, 64], "lr": 0.01,
                                 "iterations": 300, "mask_ratio": 0.5, "network": {"channels": [4, 8, 16, 32, 64]}}))
    with pytest.warns(RenamedSettingWarning) as caught:
        cfg = load_config(f, ["lr_end=0.002", "head=paper"])
    texts = [str(w.message) for w in caught if issubclass(w.category, RenamedSettingWarning)]
    assert len(texts) == 2, texts  # one for the file, one for --set
    assert "old.yaml" in texts[0] and "crop_size -> data.patch_size" in texts[0] and "lr -> train.lr" in texts[0]
    assert "lr_end is now called train.lr_end" in texts[1] or "lr_end -> train.lr_end" in texts[1]
    assert cfg.data.root == "/cases" and cfg.data.cache_dir == "/cache" and cfg.data.patch_size == (64, 64, 64)
    assert (cfg.train.lr, cfg.train.lr_end, cfg.train.iterations) == (0.01, 0.002, 300)
    assert cfg.method.mask_ratio == 0.5 and cfg.method.head == "paper" and cfg.network.channels == (4, 8, 16, 32, 64)


def test_new_names_load_without_a_warning_and_win_over_old_ones() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", RenamedSettingWarning)
        cfg = load_config(None, ["data.root=/cases", "train.lr=0.5"])
    assert cfg.data.root == "/cases" and cfg.train.lr == 0.5
    with pytest.warns(RenamedSettingWarning, match="the value of train.lr given as well wins"):
        assert load_config(None, ["lr=0.1", "train.lr=0.2"]).train.lr == 0.2
    # an unknown setting is still refused with its place named
    with pytest.raises(ConfigError, match=r"did you mean method\.head_bn"):
        load_config(None, ["train.head_bn=0"])


def test_flat_saved_settings_pass_the_resume_rule() -> None:
    """A checkpoint's flat settings, read by the resume rule (the next test does it with a real run)."""
    saved = flat(load_config(None, TINY + ["data.root=/cases"]).to_dict())
    with pytest.warns(RenamedSettingWarning, match="the run's saved settings"):
        cfg = resume_config(PretrainConfig, saved, {"train": {"iterations": 9}})
    assert cfg.train.iterations == 9 and cfg.data.root == "/cases" and cfg.method.n_pairs == 64
    with pytest.warns(RenamedSettingWarning), pytest.raises(ConfigError, match=r"train\.lr: 0\.001 -> 0\.5"):
        resume_config(PretrainConfig, saved, {"train": {"lr": 0.5}})


def test_a_run_saved_with_the_flat_layout_resumes(tmp_path: Path, synthetic_dataset: Path, caplog) -> None:
    """A real 1-iteration run whose config.yaml and checkpoint are rewritten in the old layout resumes to 2."""
    run = tmp_path / "run"
    cfg = load_config(None, TINY + [f"data.root={synthetic_dataset}", f"data.cache_dir={tmp_path / 'cache'}",
                                    "train.iterations=1", "train.checkpoint_every=1"])
    assert run_pretraining(cfg, run, show_progress=False) == 0
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt")
    old = flat(ckpt["config"])
    assert "lr" in old and "train" not in old and old["data"] == str(synthetic_dataset)
    save_checkpoint(dict(ckpt, config=old), run / "checkpoints" / "last.pt")
    (run / "config.yaml").write_text(yaml.safe_dump(old, sort_keys=False))

    with pytest.warns(RenamedSettingWarning, match="the run's saved settings"):
        assert main(["pretrain", "--resume", str(run), "--device", "cpu", "--max-iters", "2", "--no-progress"]) == 0
    prog = [e["iteration"] for e in read_events(run / "events.jsonl")
            if e["event"] == "progress" and e["stage"] == "pretrain"]
    assert prog == [1, 2]
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["train"]["iterations"] == 2 and saved["data"]["root"] == str(synthetic_dataset) and "lr" not in saved
    # the old flat --set of another value is still refused by the resume rule, under the new name
    with pytest.warns(RenamedSettingWarning), caplog.at_level(logging.ERROR):
        assert main(["pretrain", "--resume", str(run), "--device", "cpu", "--set", "lr=0.5"]) == 1
    assert "train.lr" in caplog.text and "allow-changed-settings" in caplog.text
