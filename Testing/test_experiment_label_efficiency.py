"""The label-efficiency experiment: plan, real runs of both arms, held-out scoring, table, plot, resumption."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import List

import pytest
import torch
from support.training import set_args
from voxmmsd import synthetic
from voxmmsd.cli.main import main
from voxmmsd.errors import InputError
from voxmmsd.experiment.plan import make_plan
from voxmmsd.experiment.report import summarise
from voxmmsd.finetune.config import load_config
from voxmmsd.jobs.events import read_events
from voxmmsd.nets.unet import VoxUNet
from voxmmsd.nets.weights import save_weights

IDS = [f"c{i}" for i in range(10)]


def test_plan_nests_training_sets_and_holds_out_test_cases() -> None:
    test, runs = make_plan(IDS, [2, 4], test=3, val=1, repeats=2, seed=0)
    assert len(test) == 3 and len(runs) == 2 * 2 * 2
    for r in runs:
        assert not set(r.train) & set(test) and not set(r.val) & set(test) and not set(r.train) & set(r.val)
        assert len(r.train) == r.n
    for rep in (0, 1):
        small = next(r for r in runs if r.repeat == rep and r.n == 2 and r.arm == "scratch")
        big = next(r for r in runs if r.repeat == rep and r.n == 4 and r.arm == "pretrained")
        same = next(r for r in runs if r.repeat == rep and r.n == 2 and r.arm == "pretrained")
        assert big.train[:2] == small.train and same.train == small.train
    with pytest.raises(InputError, match="only 7 remain"):
        make_plan(IDS, [8], test=3)


def test_summary_means() -> None:
    rows = [{"arm": "scratch", "n": 2, "repeat": 0, "case_id": c, "region": g, "dice": d, "hd95_mm": 1.0,
             "lesion_dice": 0.5} for c, d in (("a", 0.2), ("b", 0.4)) for g in ("WT", "TC", "ET")]
    s = {x["region"]: x for x in summarise(rows)}
    assert s["WT"]["dice_mean"] == pytest.approx(0.3) and s["WT"]["cases"] == 2
    assert s["mean"]["dice_mean"] == pytest.approx(0.3) and s["mean"]["dice_sd"] == pytest.approx(0.1414, abs=1e-3)


def _experiment(tmp_path: Path, sizes: str, iterations: int) -> List[str]:
    """The arguments of a real experiment on 5 synthetic cases, with a random 'pre-trained' backbone."""
    data = synthetic.write_dataset(tmp_path / "data", n=5)
    cfg = load_config(None, ["network.channels=[4,8,16,32,64]"])
    torch.manual_seed(0)
    save_weights(VoxUNet(cfg.network).state_dict(), tmp_path / "pre" / "backbone.safetensors")
    return ["experiment", "label-efficiency", "--data", str(data), "--out", str(tmp_path / "exp"), "--init",
            str(tmp_path / "pre"), "--sizes", sizes, "--test", "1", "--max-iters", str(iterations), "--device",
            "cpu"] + set_args([f"train.epoch_iters={iterations}", "validation.overlap=0.25"])


def test_one_size_both_arms_scored_paired_and_kept_on_a_rerun(tmp_path: Path) -> None:
    """Smoke test of the experiment (the two-size version below is slow): one training size, both arms."""
    args = _experiment(tmp_path, "1", 2)
    out = tmp_path / "exp"
    assert main(args) == 0
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert len(rows) == 2 * 1 * 1 * 3  # arms x sizes x test cases x regions
    assert {r["arm"] for r in rows} == {"scratch", "pretrained"} and all(0.0 <= float(r["dice"]) <= 1.0 for r in rows)
    pairs = list(csv.DictReader(open(out / "paired.csv")))
    assert {(p["n"], p["region"]) for p in pairs} == {("1", g) for g in ("WT", "TC", "ET", "mean")}
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["pretrained_n001_r0", "scratch_n001_r0"]
    pre = next(e for e in read_events(out / "runs" / "pretrained_n001_r0" / "events.jsonl") if e["event"] == "start")
    assert pre["init"]["loaded"] > 100 and pre["train_cases"] == 1
    stamp = (out / "runs" / "scratch_n001_r0" / "model" / "model.json").stat().st_mtime_ns
    assert main(args) == 0  # again: finished runs are kept, results rebuilt
    assert (out / "runs" / "scratch_n001_r0" / "model" / "model.json").stat().st_mtime_ns == stamp
    assert len(list(csv.DictReader(open(out / "results.csv")))) == len(rows)


@pytest.mark.slow  # four fine-tuning runs and their scoring; the default run has the one-size smoke test above
def test_both_arms_run_scored_on_held_out_cases(tmp_path: Path) -> None:
    args = _experiment(tmp_path, "1,2", 3)
    out = tmp_path / "exp"
    assert main(args) == 0
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert len(rows) == 2 * 2 * 1 * 3  # arms x sizes x test cases x regions
    assert {r["arm"] for r in rows} == {"scratch", "pretrained"} and {r["n"] for r in rows} == {"1", "2"}
    test_cases = {r["case_id"] for r in rows}
    assert len(test_cases) == 1
    for r in rows:
        assert 0.0 <= float(r["dice"]) <= 1.0
    summary = list(csv.DictReader(open(out / "summary.csv")))
    assert len(summary) == 2 * 2 * 4
    assert (out / "label_efficiency.png").stat().st_size > 1000
    pairs = list(csv.DictReader(open(out / "paired.csv")))
    assert {(p["n"], p["region"]) for p in pairs} == {(n, g) for n in ("1", "2") for g in ("WT", "TC", "ET", "mean")}
    assert all(p["repeats"] == "1" and p["case_pairs"] == "1" for p in pairs)
    runs = sorted(p.name for p in (out / "runs").iterdir())
    assert runs == ["pretrained_n001_r0", "pretrained_n002_r0", "scratch_n001_r0", "scratch_n002_r0"]
    pre = next(e for e in read_events(out / "runs" / "pretrained_n002_r0" / "events.jsonl") if e["event"] == "start")
    scr = next(e for e in read_events(out / "runs" / "scratch_n002_r0" / "events.jsonl") if e["event"] == "start")
    assert pre["init"]["loaded"] > 100 and scr["init"]["source"] is None
    assert pre["train_cases"] == 2 and not (test_cases & set(load_config(
        out / "runs" / "pretrained_n002_r0" / "config.yaml").data.train))

    stamp = (out / "runs" / "scratch_n001_r0" / "model" / "model.json").stat().st_mtime_ns
    assert main(args) == 0  # again: finished runs are kept, results rebuilt
    assert (out / "runs" / "scratch_n001_r0" / "model" / "model.json").stat().st_mtime_ns == stamp
    assert len(list(csv.DictReader(open(out / "results.csv")))) == len(rows)


def test_pretrained_arm_needs_init(tmp_path: Path, caplog) -> None:
    data = synthetic.write_dataset(tmp_path / "data", n=3)
    assert main(["experiment", "label-efficiency", "--data", str(data), "--out", str(tmp_path / "e"),
                 "--sizes", "1"]) == 1
    assert "--init" in caplog.text


def test_paired_comparison_by_repeat_and_case() -> None:
    from voxmmsd.experiment.report import paired

    dice = {("scratch", 0): {"a": 0.5, "b": 0.3}, ("pretrained", 0): {"a": 0.6, "b": 0.4},
            ("scratch", 1): {"a": 0.4, "b": 0.4}, ("pretrained", 1): {"a": 0.3, "b": 0.6}}
    rows = [{"arm": arm, "n": 2, "repeat": rep, "case_id": c, "region": g, "dice": d + (0.1 if g == "TC" else 0.0),
             "hd95_mm": 1.0, "lesion_dice": 0.5}
            for (arm, rep), cases in dice.items() for c, d in cases.items() for g in ("WT", "TC", "ET")]
    rows.append({"arm": "scratch", "n": 4, "repeat": 0, "case_id": "a", "region": "WT", "dice": 0.9,
                 "hd95_mm": 1.0, "lesion_dice": 0.5})  # no pre-trained partner: not compared
    out = {(p["n"], p["region"]): p for p in paired(rows)}
    assert set(out) == {(2, "WT"), (2, "TC"), (2, "ET"), (2, "mean")}
    wt = out[(2, "WT")]
    # run means: scratch 0.4, 0.4; pretrained 0.5, 0.45 -> differences 0.1, 0.05
    assert wt["repeats"] == 2 and wt["scratch_mean"] == pytest.approx(0.4) and wt["scratch_sd"] == 0.0
    assert wt["pretrained_mean"] == pytest.approx(0.475) and wt["diff_mean"] == pytest.approx(0.075)
    assert wt["diff_sd"] == pytest.approx(0.0354, abs=1e-4) and wt["pretrained_better"] == 2
    from scipy import stats

    diffs = [0.1, 0.1, -0.1, 0.2]
    assert wt["case_pairs"] == 4 and wt["case_diff_mean"] == pytest.approx(0.075)
    assert wt["case_p_value"] == pytest.approx(stats.ttest_rel([0.6, 0.4, 0.3, 0.6], [0.5, 0.3, 0.4, 0.4]).pvalue,
                                               abs=1e-4)
    assert wt["case_p_value"] == pytest.approx(stats.ttest_1samp(diffs, 0.0).pvalue, abs=1e-4)
    assert out[(2, "mean")]["diff_mean"] == pytest.approx(0.075)  # the per-case mean over regions, then paired
