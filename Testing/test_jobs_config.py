"""The one configuration loader shared by pre-training and fine-tuning: same parsing, merging and resume rule."""

from __future__ import annotations

from pathlib import Path

import pytest
from voxmmsd.errors import ConfigError
from voxmmsd.finetune.config import FinetuneConfig
from voxmmsd.finetune.config import load_config as load_finetune
from voxmmsd.jobs.config import differences, leaf_paths, merge, parse_overrides, resume_config
from voxmmsd.pretrain.config import PretrainConfig
from voxmmsd.pretrain.config import load_config as load_pretrain


@pytest.mark.parametrize("text,value", [("true", True), ("yes", True), ("on", True), ("1", True),
                                        ("false", False), ("off", False), ("0", False)])
def test_booleans_parse_the_same_in_both_commands(text: str, value: bool) -> None:
    assert load_pretrain(None, [f"train.deterministic={text}"]).train.deterministic is value
    assert load_finetune(None, [f"data.augment={text}"]).data.augment is value


@pytest.mark.parametrize("bad", ["maybe", "2", "[1]"])
def test_bad_booleans_are_refused_by_both(bad: str) -> None:
    with pytest.raises(ConfigError, match="true or false"):
        load_pretrain(None, [f"train.deterministic={bad}"])
    with pytest.raises(ConfigError, match="true or false"):
        load_finetune(None, [f"data.augment={bad}"])


def test_whole_numbers_and_tuples_parse_the_same() -> None:
    with pytest.raises(ConfigError, match="whole number"):
        load_pretrain(None, ["train.iterations=1.5"])
    with pytest.raises(ConfigError, match="whole number"):
        load_finetune(None, ["train.iterations=1.5"])
    for text in ("64,64,64", "[64,64,64]"):
        assert load_pretrain(None, [f"data.patch_size={text}"]).data.patch_size == (64, 64, 64)
        assert load_finetune(None, [f"data.patch_size={text}"]).data.patch_size == (64, 64, 64)
        five = text.replace("64,64,64", "64,64,64,64,64")
        assert load_finetune(None, [f"network.channels={five}"]).network.channels == (64,) * 5
    with pytest.raises(ConfigError, match="3 values"):
        load_finetune(None, ["data.patch_size=[64,64]"])
    assert load_finetune(None, ["preprocessing.spacing=2,2,2"]).preprocessing.spacing == (2.0, 2.0, 2.0)
    assert load_finetune(None, ["preprocessing.spacing=null"]).preprocessing.spacing is None


def test_deep_merge_keeps_siblings_at_every_depth(tmp_path: Path) -> None:
    assert merge({"a": {"b": {"c": 1, "d": 2}}}, {"a": {"b": {"c": 3}}}) == {"a": {"b": {"c": 3, "d": 2}}}
    (tmp_path / "p.yaml").write_text("augment:\n  blur_prob: 0.3\n  noise_std: 0.1\n")
    cfg = load_pretrain(tmp_path / "p.yaml", ["augment.blur_prob=0.4"])
    assert cfg.augment.blur_prob == 0.4 and cfg.augment.noise_std == 0.1
    assert parse_overrides(["a.b.c=1", "a.b.d=x"]) == {"a": {"b": {"c": 1, "d": "x"}}}


def test_unknown_keys_name_the_full_path() -> None:
    with pytest.raises(ConfigError, match=r"did you mean train\.lr"):
        load_finetune(None, ["lr=0.1"])
    with pytest.raises(ConfigError, match=r"did you mean augment\.blur_prob"):
        load_pretrain(None, ["blur_prob=0.1"])
    with pytest.raises(ConfigError, match=r"known in 'network'"):
        load_pretrain(None, ["network.chanels=1,2"])
    assert "augment.gamma_range" in leaf_paths(PretrainConfig) and "train.lr" in leaf_paths(FinetuneConfig)


def test_resume_rule_is_the_same_for_both() -> None:
    # the same names in both: pre-training's settings share fine-tuning's sections
    for cls, free, changed, same in ((PretrainConfig, ("train.iterations",), {"train": {"lr": 0.5}},
                                      {"train": {"lr": 1e-3}}),
                                     (FinetuneConfig, ("train.iterations",), {"train": {"lr": 0.5}},
                                      {"train": {"lr": 1e-3}})):
        saved = cls().to_dict()
        assert resume_config(cls, saved, same) == cls()  # the same value again is no change
        with pytest.raises(ConfigError, match="allow-changed-settings") as err:
            resume_config(cls, saved, changed)
        assert "lr: 0.001 -> 0.5" in str(err.value)
        assert resume_config(cls, saved, changed, allow_changed=True) != cls()
        length = {"train": {"iterations": 7}}
        assert differences(cls(), resume_config(cls, saved, length, free=free))[0][2] == 7


@pytest.mark.parametrize("command,change,same", [
    ("pretrain", "train.lr=0.5", "train.lr=0.001"),
    ("finetune", "train.lr=0.5", "train.lr=0.001"),
])
def test_both_commands_apply_the_resume_rule(tmp_path: Path, caplog, command: str, change: str, same: str) -> None:
    """A run folder with a checkpoint: --set of another value is refused, unless --allow-changed-settings."""
    import logging

    from voxmmsd.cli.main import main
    from voxmmsd.jobs.checkpoint import save_checkpoint
    from voxmmsd.jobs.run_folder import RunFolder

    run = RunFolder(tmp_path / "run")
    data = str(tmp_path / "no-data")
    config = PretrainConfig if command == "pretrain" else FinetuneConfig
    saved = config.from_dict({"data": {"root": data}})
    save_checkpoint({"config": saved.to_dict(), "iteration": 1}, run.last_checkpoint)

    def cli(*args: str) -> str:
        caplog.clear()
        with caplog.at_level(logging.ERROR):
            assert main([command, "--resume", str(run.root), "--device", "cpu", *args]) == 1
        return caplog.text

    assert "allow-changed-settings" in cli("--set", change) and "0.001 -> 0.5" in caplog.text
    # the same value again, or a change that is allowed, passes the rule: the run then fails on the missing data
    for args in (("--set", same), ("--set", change, "--allow-changed-settings")):
        text = cli(*args)
        assert "allow-changed-settings" not in text and "no-data" in text, text
