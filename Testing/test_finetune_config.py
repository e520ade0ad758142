"""Fine-tuning configuration: defaults, YAML round trip, --set overrides, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from voxmmsd.errors import ConfigError
from voxmmsd.finetune.config import FinetuneConfig, load_config, parse_overrides, with_settings


def test_round_trip_through_dict_and_yaml(tmp_path: Path) -> None:
    cfg = load_config(None, ["network.channels=[8,16,32,64,128]", "preprocessing.spacing=[2,2,2]",
                             "data.patch_size=[64,64,48]", "data.val=[a,b]", "train.lr=0.005"])
    assert cfg.network.channels == (8, 16, 32, 64, 128)
    assert cfg.preprocessing.spacing == (2.0, 2.0, 2.0)
    assert cfg.data.patch_size == (64, 64, 48)
    assert cfg.data.val == ("a", "b")
    assert cfg.train.lr == 0.005
    (tmp_path / "c.yaml").write_text(cfg.to_yaml())
    again = load_config(tmp_path / "c.yaml")
    assert again == cfg
    assert FinetuneConfig.from_dict(cfg.to_dict()) == cfg


def test_later_sources_win(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("train:\n  lr: 0.01\n  iterations: 50\ndata:\n  val: 2\n")
    cfg = load_config(tmp_path / "c.yaml", ["train.lr=0.02"])
    assert cfg.train.lr == 0.02 and cfg.train.iterations == 50 and cfg.data.val == 2
    assert with_settings(cfg, train={"iterations": 7}).train.iterations == 7
    assert FinetuneConfig().data.val == 0.2


@pytest.mark.parametrize("override, words", [
    ("train.lrr=1", "train.lrr"),
    ("nosuch.x=1", "nosuch"),
    ("data.patch_size=[60,64,64]", "multiple of 16"),
    ("train.iterations=1.5", "whole number"),
    ("data.augment=maybe", "true or false"),
    ("train.optimizer=adam", "adamw or sgd"),
    ("data.labels=2021", "auto, brats2023 or legacy"),
    ("network.channels=[1,2]", "five levels"),
])
def test_bad_settings_are_named(override: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words.replace("[", r"\[")):
        load_config(None, [override])


def test_override_syntax_errors() -> None:
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_overrides(["lr0.1"])
    with pytest.raises(ConfigError, match=r"did you mean train\.lr"):
        load_config(None, ["lr=0.1"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(Path("/nonexistent/c.yaml"))
