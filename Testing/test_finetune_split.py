"""Seeded training/validation split by number, fraction or list."""

from __future__ import annotations

import pytest
from voxmmsd.errors import InputError
from voxmmsd.finetune.split import split_cases

IDS = [f"c{i:02d}" for i in range(10)]


def test_numbers_and_fractions() -> None:
    train, val = split_cases(IDS, None, 0.2, seed=1)
    assert len(val) == 2 and len(train) == 8 and not set(train) & set(val)
    assert sorted(train + val) == IDS
    train, val = split_cases(IDS, 3, 4, seed=1)
    assert len(train) == 3 and len(val) == 4 and not set(train) & set(val)


def test_same_seed_same_split_whatever_the_order() -> None:
    assert split_cases(IDS, 5, 2, seed=3) == split_cases(list(reversed(IDS)), 5, 2, seed=3)
    assert split_cases(IDS, 5, 2, seed=3) != split_cases(IDS, 5, 2, seed=4)


def test_nested_training_sets_share_validation() -> None:
    t2, v2 = split_cases(IDS, 2, 3, seed=0)
    t5, v5 = split_cases(IDS, 5, 3, seed=0)
    assert v2 == v5 and t5[:2] == t2


def test_lists() -> None:
    train, val = split_cases(IDS, ["c01", "c02"], ["c09"])
    assert train == ["c01", "c02"] and val == ["c09"]
    assert sorted(split_cases(IDS, None, ["c00"])[0]) == IDS[1:]


@pytest.mark.parametrize("train, val, words", [
    (["c01", "zz"], 0, "not in the data set"),
    (["c01"], ["c01"], "both the training and the validation"),
    (None, 10, "only 10"),
    (20, 2, "only 8 remain"),
    (None, 1.5, "between 0 and 1"),
    (None, -1, "negative"),
])
def test_errors_name_the_problem(train, val, words) -> None:
    with pytest.raises(InputError, match=words):
        split_cases(IDS, train, val)


def test_no_cases() -> None:
    with pytest.raises(InputError, match="no labelled cases"):
        split_cases([], None, 0.2)
