"""The cohort run's parts without training: the install rule, summaries, the recipe a starting model implies,
versions, provenance, and the refusals of install and of a cohort too small to compare on."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from voxmmsd.cli.main import main
from voxmmsd.cohort import compare, install, recipe
from voxmmsd.cohort.learn import candidate_folder
from voxmmsd.errors import ModelError


def rows(model: str, dice: dict, vol_err: float = 1.0, cases=("a", "b")) -> list:
    return [{"case_id": c, "fold": i, "model": model, "region": r, "dice": d[i] if isinstance(d, list) else d,
             "volume_pred_ml": 1.0, "volume_ref_ml": 1.0, "volume_error_ml": -vol_err if i else vol_err}
            for i, c in enumerate(cases) for r, d in dice.items()]


def test_summary_means_dice_and_absolute_volume_error():
    s = compare.summarise(rows("start", {"WT": [0.6, 0.8], "TC": 0.5, "ET": 0.4}, vol_err=2.0))
    assert s["start"]["WT"]["dice"] == pytest.approx(0.7) and s["start"]["WT"]["cases"] == 2
    assert s["start"]["WT"]["abs_volume_error_ml"] == pytest.approx(2.0)  # |+2| and |-2|, not their mean 0
    assert s["start"]["mean"]["dice"] == pytest.approx((0.7 + 0.5 + 0.4) / 3)


@pytest.mark.parametrize("tuned,rule,not_worse,why", [
    ({"WT": 0.8, "TC": 0.6, "ET": 0.5}, compare.Rule(), True, "not worse"),
    ({"WT": 0.7, "TC": 0.5, "ET": 0.4}, compare.Rule(), True, "not worse"),  # equal is not worse
    ({"WT": 0.69, "TC": 0.5, "ET": 0.4}, compare.Rule(), False, "worse on the held-out"),
    ({"WT": 0.69, "TC": 0.5, "ET": 0.4}, compare.Rule(tolerance=0.01), True, "not worse"),
    ({"WT": 0.9, "TC": 0.7, "ET": 0.3}, compare.Rule(), False, "ET Dice drops by 0.100"),  # mean up, ET down
    ({"WT": 0.9, "TC": 0.7, "ET": 0.3}, compare.Rule(max_region_drop=0.2), True, "not worse"),
])
def test_install_rule(tuned, rule, not_worse, why):
    summary = compare.summarise(rows("start", {"WT": 0.7, "TC": 0.5, "ET": 0.4}) + rows("finetuned", tuned))
    decision = compare.decide(summary, rule)
    assert decision["not_worse"] is not_worse and why in decision["reason"]
    assert decision["difference"]["WT"] == pytest.approx(tuned["WT"] - 0.7)
    table = compare.format_table(summary)
    assert table.splitlines()[1].startswith("WT") and f"{tuned['WT'] - 0.7:+.3f}" in table


def test_an_incomplete_comparison_is_never_not_worse():
    assert not compare.decide(compare.summarise(rows("start", {"WT": 0.7, "TC": 0.5, "ET": 0.4})))["not_worse"]
    nan = compare.summarise(rows("start", {"WT": math.nan, "TC": 0.5, "ET": 0.4}) +
                            rows("finetuned", {"WT": math.nan, "TC": 0.5, "ET": 0.4}))
    assert nan["start"]["WT"]["dice"] != nan["start"]["WT"]["dice"]  # NaN: no case scored
    assert not compare.decide(nan)["not_worse"]


def test_recipe_inherits_the_starting_models_network_preprocessing_and_known_settings(tmp_path: Path):
    meta = {"network": {"in_channels": 4, "num_classes": 4, "channels": [4, 8, 16, 32, 64],
                        "dropout": [0.0, 0.0, 0.2, 0.2, 0.2]},
            "preprocessing": {"percentile": 99.5, "crop_margin": 2, "spacing": [2.0, 2.0, 2.0]},
            "inference": {"output": "regions"},
            "training": {"config": {"data": {"patch_size": [48, 48, 48], "root": "/their/data",
                                             "sequence_dropout": 0.25, "a_setting_from_elsewhere": 1},
                                    "train": {"iterations": 9999, "lr": 0.5, "seed": 3},
                                    "init": {"path": "/their/init"}}}}
    cfg = recipe.cohort_config(meta, tmp_path / "start")
    assert cfg.network.channels == (4, 8, 16, 32, 64) and cfg.preprocessing.spacing == (2.0, 2.0, 2.0)
    assert cfg.data.patch_size == (48, 48, 48) and cfg.data.sequence_dropout == 0.25 and cfg.train.seed == 3
    assert cfg.train.loss == "regions"  # the output it was trained for
    assert cfg.data.root is None and cfg.init.path == str((tmp_path / "start").resolve()) and cfg.init.keep_head
    assert cfg.train.iterations == 200 and cfg.train.lr == 2e-4 and cfg.train.lr_warmup == 0 and cfg.data.val == 0
    cfg = recipe.cohort_config(meta, tmp_path / "start", overrides=["train.lr=0.01"], max_iters=7)
    assert cfg.train.lr == 0.01 and cfg.train.iterations == 7
    no_recipe = recipe.cohort_config({k: meta[k] for k in ("network", "preprocessing")}, tmp_path / "s")
    assert no_recipe.data.patch_size == (64, 64, 64) and no_recipe.train.loss == "dice_ce"


def test_a_fold_ensemble_is_fine_tuned_as_one_network_from_its_first_member(tmp_path: Path):
    """A fold ensemble (network.members) as the starting model: the cohort run trains one U-Net of the members'
    shape, warm-started from member 0, with the ensemble's preprocessing (z-score normalisation kept)."""
    torch = pytest.importorskip("torch")
    from voxmmsd.finetune.init import initialise
    from voxmmsd.models.package import load_package, save_package
    from voxmmsd.nets.config import UNetConfig
    from voxmmsd.nets.ensemble import FoldEnsemble
    from voxmmsd.nets.unet import VoxUNet
    from voxmmsd.preprocessing import PreprocessConfig

    torch.manual_seed(1)
    net = UNetConfig(channels=(4, 8, 16, 32, 64), members=2)
    folder = save_package(tmp_path / "ens", FoldEnsemble(net).state_dict(), net,
                          PreprocessConfig(normalization="zscore"), model_id="ens", version="1.0.0",
                          name="Ensemble", export_onnx=False)
    meta = load_package(folder).meta
    assert meta["network"]["members"] == 2
    cfg = recipe.cohort_config(meta, folder)
    assert cfg.network.members == 1 and cfg.network.channels == (4, 8, 16, 32, 64)
    assert cfg.preprocessing.normalization == "zscore"
    model = VoxUNet(cfg.network)
    initialise(model, Path(cfg.init.path), cfg.init.keep_head)
    member0 = {k[len("members.0."):]: v for k, v in load_package(folder).load_state_dict().items()
               if k.startswith("members.0.")}
    assert member0 and all(torch.equal(model.state_dict()[k].float(), v.float()) for k, v in member0.items())


def test_recipe_from_a_pretraining_run_takes_its_network_and_a_fresh_head(tmp_path: Path):
    run = tmp_path / "pt"
    run.mkdir()
    (run / "config.yaml").write_text("network:\n  channels: [8, 16, 32, 64, 128]\npreprocessing:\n  percentile: 99.0\n")
    meta = {"network": {"in_channels": 4, "num_classes": 4, "channels": [4, 8, 16, 32, 64]},
            "preprocessing": {"percentile": 99.9}, "inference": {}}
    cfg = recipe.cohort_config(meta, tmp_path / "start", init=run)
    assert cfg.network.channels == (8, 16, 32, 64, 128) and cfg.preprocessing.percentile == 99.0
    assert cfg.init.path == str(run.resolve()) and not cfg.init.keep_head and cfg.train.lr_warmup == 0.1


def test_versions_ids_and_provenance(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("VOXMMSD_HOME", str(tmp_path / "home"))
    assert install.next_version("x-local") == "1.0.0"
    for v in ("1.0.0", "3.0.0", "2.5.1"):
        d = tmp_path / "home" / "models" / "x-local" / v
        d.mkdir(parents=True)
        (d / "model.json").write_text("{}")
    assert install.next_version("x-local") == "4.0.0"
    assert install.local_id("voxmmsd-brats-default") == "voxmmsd-brats-default-local"
    assert install.local_id("x-local") == "x-local"
    meta = {"training": {"cohort": {"cases": 7, "date": "2025-03-01T10:00:00Z", "installed": {"override": True}}},
            "metrics": {"cohort_crossval": {
                "finetuned": {"WT": {"dice": 0.85}, "TC": {"dice": 0.7}, "ET": {"dice": 0.6}},
                "start": {"WT": {"dice": 0.81}, "TC": {"dice": 0.68}, "ET": {"dice": 0.62}}}}}
    text = install.describe(meta)
    assert text == ("cohort of 7 cases, 2025-03-01; held-out Dice WT/TC/ET 0.85/0.70/0.60 vs start 0.81/0.68/0.62; "
                    "installed although worse")
    assert install.describe({"training": {"recipe": "x"}}) == ""


def test_install_refuses_a_run_without_comparison_or_model(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("VOXMMSD_HOME", str(tmp_path / "home"))
    run = tmp_path / "run"
    run.mkdir()
    assert main(["-q", "cohort", "install", str(run)]) == 1  # no comparison.json
    (run / "comparison.json").write_text(json.dumps({"decision": {"not_worse": True, "reason": "r"}}))
    with pytest.raises(ModelError, match="final fine-tuning has not finished"):
        install.install_candidate(run)
    assert candidate_folder(run) == run / "final" / "model"
    assert not (tmp_path / "home" / "models").exists()


def test_a_cohort_of_one_case_is_refused_before_any_training(tmp_path: Path, synthetic_case: Path, caplog):
    cohort = tmp_path / "cohort"
    assert main(["-q", "cohort", "add", str(cohort), str(synthetic_case), "--skull-strip", "off"]) == 0
    assert main(["-q", "cohort", "finetune", str(cohort), "--out", str(tmp_path / "run"), "--model",
                 "voxmmsd-brats-default@2.0.0", "--max-iters", "1"]) == 1
    assert "holds 1 case(s)" in caplog.text
    assert not (tmp_path / "run").exists()
