"""The typed configuration: paper defaults, YAML, --set overrides, clear errors."""

from __future__ import annotations

import pytest
import yaml
from voxmmsd.errors import ConfigError
from voxmmsd.pretrain.config import PretrainConfig, load_config, to_yaml


def test_paper_defaults():
    c = PretrainConfig()
    m = c.method
    assert c.data.patch_size == (96, 96, 96) and m.block_size == 16 and m.mask_ratio == 0.875
    assert m.n_pairs == 1024 and m.out_dim == 512 and m.student_temp == 0.1
    # teacher_temp_end: DINO's 0.04 rather than the paper's 0.07 (issue 11, docs/pretraining.md)
    assert (m.teacher_temp, m.teacher_temp_end) == (0.04, 0.04) and (m.ema_momentum, m.ema_momentum_end) == (0.996, 1.0)
    assert c.data.batch_size == 2 and c.network.channels == (32, 64, 128, 256, 512)


def test_yaml_then_overrides_and_round_trip(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump({"train": {"lr": 0.01}, "network": {"channels": [4, 8, 16, 32, 64]},
                                 "augment": {"blur_prob": 0.3}}))
    cfg = load_config(f, ["train.lr=0.02", "data.patch_size=32,32,32", "method.block_size=8",
                          "preprocessing.spacing=2,2,2", "train.deterministic=true", "augment.gamma_range=[0.8,1.2]"])
    assert cfg.train.lr == 0.02 and cfg.network.channels == (4, 8, 16, 32, 64) and cfg.augment.blur_prob == 0.3
    assert cfg.data.patch_size == (32, 32, 32) and cfg.preprocessing.spacing == (2.0, 2.0, 2.0)
    assert cfg.train.deterministic
    assert cfg.augment.gamma_range == (0.8, 1.2)
    again = PretrainConfig.from_dict(yaml.safe_load(to_yaml(cfg)))
    assert again == cfg


@pytest.mark.parametrize("override,match", [
    ("learning_rate=1", "Unknown setting"),
    ("network.chanels=1,2", "Unknown setting"),
    ("data.patch_size=40,40,40", "multiple of 16"),
    ("method.mask_ratio=1.5", "mask_ratio"),
    ("train.optimizer=lbfgs", "optimizer"),
    ("train.iterations=abc", "iterations"),
    ("lr", "key=value"),
])
def test_bad_settings_are_named(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config(None, [override])


def test_bad_yaml_file(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("lr: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_config(f)
