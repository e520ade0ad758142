"""One training vocabulary: fine-tuning's old setting names (``train.final_lr``, ``train.warmup_iters``, a count)
still load from YAML files, ``--set`` and the checkpoints of existing runs, with a warning, under the names
pre-training uses (``lr_end``, ``lr_warmup`` as a fraction of the run); a resume of such a run continues."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from support.training import TINY_SETTINGS
from voxmmsd.errors import ConfigError
from voxmmsd.finetune.config import FinetuneConfig, load_config
from voxmmsd.jobs.config import leaf_paths, resume_config
from voxmmsd.jobs.events import read_events
from voxmmsd.jobs.renamed import RenamedSettingWarning
from voxmmsd.jobs.run_folder import RunFolder
from voxmmsd.pretrain.config import PretrainConfig


def test_pretraining_and_fine_tuning_share_the_schedule_names() -> None:
    pre = {p.rsplit(".", 1)[-1] for p in leaf_paths(PretrainConfig)}
    fine = {p.split(".", 1)[1] for p in leaf_paths(FinetuneConfig) if p.startswith("train.")}
    for name in ("iterations", "optimizer", "lr", "lr_end", "lr_warmup", "weight_decay", "momentum", "grad_clip",
                 "precision", "seed", "log_every", "channels_last"):
        assert name in pre and name in fine, name
    assert not {"final_lr", "warmup_iters"} & fine


def test_old_names_in_a_yaml_file_are_read_under_the_new_ones(tmp_path: Path) -> None:
    path = tmp_path / "old.yaml"
    path.write_text("train:\n  iterations: 400\n  final_lr: 2.0e-6\n  warmup_iters: 40\n", encoding="utf-8")
    with pytest.warns(RenamedSettingWarning, match=r"train\.warmup_iters in .*old\.yaml is now called "
                                                   r"train\.lr_warmup: read as train\.lr_warmup=0\.1"):
        cfg = load_config(path)
    assert cfg.train.lr_end == 2e-6 and cfg.train.lr_warmup == pytest.approx(0.1) and cfg.train.iterations == 400
    # a new name given later wins over the old one of an earlier source
    with pytest.warns(RenamedSettingWarning):
        cfg = load_config(path, ["train.lr_end=3e-6"])
    assert cfg.train.lr_end == 3e-6
    # an old count without iterations beside it is a fraction of the default run
    with pytest.warns(RenamedSettingWarning):
        cfg = load_config(None, ["train.warmup_iters=200"])
    assert cfg.train.lr_warmup == pytest.approx(200 / FinetuneConfig().train.iterations)
    with pytest.raises(ConfigError, match="warmup_iters"):
        load_config(None, ["train.warmup_iters=many"])


def test_resume_rule_sees_through_the_old_names() -> None:
    saved = FinetuneConfig().to_dict()
    train = saved["train"]
    train["final_lr"] = train.pop("lr_end")
    train["warmup_iters"] = int(train.pop("lr_warmup") * train["iterations"])
    with pytest.warns(RenamedSettingWarning):
        same = resume_config(FinetuneConfig, saved, FinetuneConfig().to_dict())
    assert same == FinetuneConfig()
    with pytest.warns(RenamedSettingWarning), pytest.raises(ConfigError, match=r"train\.lr_end"):
        resume_config(FinetuneConfig, saved, {"train": {"lr_end": 1e-3}})


def _rename_to_old(settings: dict) -> dict:
    train = settings["train"]
    train["final_lr"] = train.pop("lr_end")
    train["warmup_iters"] = int(round(train.pop("lr_warmup") * train["iterations"]))
    return settings


def test_a_run_saved_with_the_old_names_resumes(synthetic_dataset: Path, tmp_path: Path) -> None:
    from voxmmsd.finetune.loop import finetune

    cfg = load_config(None, TINY_SETTINGS + ["train.iterations=2", "train.epoch_iters=2", "data.val=0",
                                             "train.lr_end=2e-5", "train.lr_warmup=0.5"])
    run = RunFolder(tmp_path / "run")
    assert finetune(synthetic_dataset, run.root, cfg, device="cpu").status == "done"
    # make it a run of an earlier version: its checkpoint and config.yaml under the old names
    ckpt = torch.load(run.last_checkpoint, map_location="cpu", weights_only=True)
    ckpt["config"] = _rename_to_old(ckpt["config"])
    torch.save(ckpt, run.last_checkpoint)
    run.config.write_text(yaml.safe_dump(_rename_to_old(yaml.safe_load(run.config.read_text()))), encoding="utf-8")
    assert "final_lr" in run.saved_settings("fine-tuning")["train"]

    longer = load_config(None, TINY_SETTINGS + ["train.iterations=3", "train.epoch_iters=2", "data.val=0",
                                                "train.lr_end=2e-5", "train.lr_warmup=0.5"])
    with pytest.warns(RenamedSettingWarning, match=r"train\.final_lr"):
        result = finetune(synthetic_dataset, run.root, longer, resume=True, device="cpu")
    assert result.status == "done" and result.iteration == 3
    starts = [e for e in read_events(run.events) if e["event"] == "start"]
    assert len(starts) == 2 and starts[1]["resumed"] and starts[1]["iteration"] == 2
    saved = run.saved_settings("fine-tuning")["train"]  # written back under the new names
    assert saved["lr_end"] == 2e-5 and "final_lr" not in saved and "warmup_iters" not in saved
