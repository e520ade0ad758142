"""Cross-validation splits (fixed, stratified, saved) and the out-of-fold summary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from voxmmsd.errors import InputError
from voxmmsd.experiment.crossval import (
    format_table,
    make_folds,
    read_splits,
    summarise_folds,
    training_ids,
    write_splits,
)

SOURCES = {**{f"a{i:02d}": "a" for i in range(12)}, **{f"b{i:02d}": "b" for i in range(10)}}


def test_folds_partition_the_cases_and_mix_the_sources() -> None:
    folds = make_folds(SOURCES, 5, seed=0)
    flat = [c for f in folds for c in f]
    assert sorted(flat) == sorted(SOURCES) and len(set(flat)) == len(flat)
    assert sorted(len(f) for f in folds) == [4, 4, 4, 5, 5]
    for f in folds:
        assert {SOURCES[c] for c in f} == {"a", "b"}
        assert 2 <= sum(SOURCES[c] == "a" for c in f) <= 3
    assert make_folds(SOURCES, 5, seed=0) == folds
    assert make_folds(dict(reversed(list(SOURCES.items()))), 5, seed=0) == folds  # order does not matter
    assert make_folds(SOURCES, 5, seed=1) != folds
    assert set(training_ids(folds, 2)) == set(SOURCES) - set(folds[2])


def test_split_file_round_trip_and_errors(tmp_path: Path) -> None:
    folds = make_folds(SOURCES, 5)
    path = write_splits(tmp_path / "splits.json", folds, SOURCES, 0)
    assert read_splits(path) == folds
    data = json.loads(path.read_text())
    data["folds"][1].append(data["folds"][0][0])
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match="two folds"):
        read_splits(path)
    with pytest.raises(InputError, match="not found"):
        read_splits(tmp_path / "none.json")
    with pytest.raises(InputError):
        make_folds({"x": "a"}, 5)


def test_summary_means_and_sds_over_cases_and_folds() -> None:
    folds = [["c1", "c2"], ["c3", "c4"]]
    dice = {"c1": 0.9, "c2": 0.7, "c3": 0.5, "c4": 0.3}
    rows = [{"case_id": c, "region": r, "dice": str(d), "hd95_mm": "nan" if c == "c4" else "5", "lesion_dice": d}
            for c, d in dice.items() for r in ("WT", "TC", "ET")]
    s = summarise_folds(rows, folds)
    assert s["WT"]["dice"]["mean"] == pytest.approx(0.6)
    assert s["WT"]["dice"]["sd_cases"] == pytest.approx(np.std(list(dice.values()), ddof=1))
    assert s["WT"]["dice"]["sd_folds"] == pytest.approx(np.std([0.8, 0.4], ddof=1))
    assert s["ET"]["hd95_mm"]["n"] == 3 and s["ET"]["hd95_mm"]["mean"] == pytest.approx(5.0)
    table = format_table(s)
    assert "| WT | 0.600 ± 0.258" in table and table.count("\n") == 4


def test_nested_choice_never_looks_at_the_fold_itself() -> None:
    from voxmmsd.experiment.crossval import choose_nested

    folds = [["a", "b"], ["c"], ["d"]]
    # fold 0's own cases love setting 2; everyone else prefers setting 0
    scores = {"a": {0: 0.1, 2: 0.9}, "b": {0: 0.1, 2: 0.9}, "c": {0: 0.8, 2: 0.1}, "d": {0: 0.7, 2: 0.2}}
    assert choose_nested(scores, folds) == [0, 2, 2]
    tie = {c: {0: 0.5, 1: 0.5} for c in "abcd"}
    assert choose_nested(tie, folds) == [0, 0, 0]


def test_cases_seen_by_reads_the_package_and_restrict_keeps_fold_positions(tmp_path: Path) -> None:
    from voxmmsd.experiment.crossval import cases_seen_by, restrict_folds

    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "model.json").write_text(json.dumps({"training": {"training_cases": ["b01", "a03"]}}))
    assert cases_seen_by(pkg) == ["a03", "b01"]
    assert cases_seen_by(pkg / "model.json") == ["a03", "b01"]
    folds = [["a01", "a03"], ["b01"], ["b02", "c01"]]
    assert restrict_folds(folds, ["a03", "b01"]) == [["a01"], [], ["b02", "c01"]]
    (pkg / "model.json").write_text(json.dumps({"training": {"cases": {"train": ["c02", "b01"], "val": ["v1"]},
                                                             "training_cases": ["a03", "b01"]}}))
    assert cases_seen_by(pkg) == ["a03", "b01", "c02"]  # a finetune run's own record, and its starting model's
    (pkg / "model.json").write_text(json.dumps({"training": {"data": "somewhere"}}))
    with pytest.raises(InputError, match="--exclude"):
        cases_seen_by(pkg)
    with pytest.raises(InputError, match="no such model.json"):
        cases_seen_by(tmp_path / "nothing")


def test_paired_difference_counts_wins_and_skips_unpaired_cases() -> None:
    from voxmmsd.experiment.crossval import paired_difference

    a = [{"case_id": f"c{i}", "region": "ET", "dice": 0.2 + 0.05 * i} for i in range(8)]
    b = [{"case_id": f"c{i}", "region": "ET", "dice": 0.3 + 0.05 * i + 0.01 * (i % 3)} for i in range(8)]
    b.append({"case_id": "only-b", "region": "ET", "dice": 1.0})
    a.append({"case_id": "nan", "region": "ET", "dice": "nan"})
    b.append({"case_id": "nan", "region": "ET", "dice": 0.9})
    r = paired_difference(a, b, regions=("ET",))["ET"]
    assert r["n"] == 8 and r["b_better"] == 8 and r["a_better"] == 0
    assert r["mean_diff"] == pytest.approx(0.1 + 0.01 * np.mean([i % 3 for i in range(8)]))
    assert r["wilcoxon_p"] < 0.01
    swapped = paired_difference(b, a, regions=("ET",))["ET"]
    assert swapped["mean_diff"] == pytest.approx(-r["mean_diff"]) and swapped["a_better"] == 8
    same = paired_difference(a, a, regions=("ET",))["ET"]
    assert same["mean_diff"] == 0 and np.isnan(same["wilcoxon_p"])


def test_paired_difference_counts_a_lower_distance_as_the_win() -> None:
    from voxmmsd.experiment.crossval import paired_difference

    a = [{"case_id": f"c{i}", "region": "WT", "hd95_mm": 20.0 + i} for i in range(5)]
    b = [{"case_id": f"c{i}", "region": "WT", "hd95_mm": 10.0 + i} for i in range(5)]
    r = paired_difference(a, b, metric="hd95_mm", regions=("WT",))["WT"]
    assert r["mean_diff"] == -10.0 and r["b_better"] == 5 and r["a_better"] == 0


def test_keep_together_moves_a_patient_pair_into_one_fold():
    from voxmmsd.experiment.crossval import keep_together

    folds = [["a", "b"], ["c", "d"], ["e", "f"]]
    out = keep_together(folds, [["b", "e"], ["x", "c"]])
    assert sorted(c for f in out for c in f) == list("abcdef")
    assert any({"b", "e"} <= set(f) for f in out)
