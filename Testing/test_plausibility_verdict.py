"""Limits, the verdict and its report record (voxmmsd.plausibility.record / verdict)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import support.plausibility_phantom as ph
from voxmmsd.plausibility.record import CheckResult, Limit
from voxmmsd.plausibility.verdict import (
    IMPLAUSIBLE,
    PLAUSIBLE,
    assess,
    model_agreement,
    refuses,
    verdict_of,
    warning_for,
)


@pytest.mark.parametrize("direction,value,expected", [
    ("min", 1.0, "pass"), ("min", 0.4, "doubtful"), ("min", -0.1, "fail"), ("min", 0.5, "pass"),
    ("max", 0.1, "pass"), ("max", 0.35, "doubtful"), ("max", 0.9, "fail"),
    ("min", None, "not_applicable"), ("min", math.nan, "not_applicable")])
def test_limit_grades_in_its_direction(direction, value, expected):
    limit = Limit(direction, doubtful=0.5, fail=0.0) if direction == "min" else Limit(direction, 0.3, 0.5)
    assert limit.grade(value) == expected


def test_a_limit_without_fail_only_makes_doubtful():
    assert Limit("max", doubtful=0.25).grade(100.0) == "doubtful"
    assert "at least 0.5" in Limit("min", 0.5, 0.0).describe()
    with pytest.raises(ValueError):
        Limit("above")


def test_verdict_is_the_worst_status():
    def c(status):
        return CheckResult("x", "g", 1.0, Limit("min", 0, -1), "m", status)

    assert verdict_of([c("pass"), c("not_applicable")]) == PLAUSIBLE
    assert verdict_of([c("pass"), c("doubtful")]) == "doubtful"
    assert verdict_of([c("doubtful"), c("fail"), c("pass")]) == IMPLAUSIBLE


def test_model_agreement_only_with_tta():
    assert model_agreement({}).status == "not_applicable"
    assert model_agreement({"tta_disagreement": 0.1}).status == "pass"
    assert model_agreement({"tta_disagreement": 0.6}).status == "doubtful"  # never fails on its own


@pytest.fixture(scope="module")
def phantom():
    return ph.case(0)


def test_correct_case_is_plausible_with_every_check_in_the_record(phantom):
    images, label = phantom
    result = assess(images, label, ph.SPACING, lr_axis=ph.LR_AXIS)
    assert result.verdict == PLAUSIBLE, result.summary()
    assert warning_for(result) is None
    record = json.loads(json.dumps(result.to_dict()))  # plain JSON for report.json
    names = [c["name"] for c in record["checks"]]
    assert names == ["image_content", "brain_overlap", "same_head", "t2w_vs_flair", "enhancement",
                     "et_bright_on_t1c", "flair_hyperintensity", "hyperintense_share", "lesion_coverage",
                     "tumour_found", "brain_fraction", "components", "mirror_overlap", "model_agreement"]
    for c in record["checks"]:
        assert set(c) >= {"value", "threshold", "status", "meaning"} and c["meaning"]
        assert c["threshold"]["direction"] in ("min", "max")


def test_swapped_t2w_and_flair_are_implausible_with_a_warning_naming_the_check(phantom):
    images, label = phantom
    result = assess({**images, "t2w": images["t2f"], "t2f": images["t2w"]}, label, ph.SPACING, lr_axis=ph.LR_AXIS)
    assert result.verdict == IMPLAUSIBLE and "t2w_vs_flair" in result.to_dict()["failed"]
    warning = warning_for(result)
    assert warning["kind"] == "plausibility" and "IMPLAUSIBLE" in warning["message"]
    assert "t2w_vs_flair" in warning["message"]


def test_doubtful_result_gets_a_doubtful_warning(phantom):
    images, _ = phantom
    result = assess(images, np.zeros(ph.SHAPE, np.uint8), ph.SPACING, lr_axis=ph.LR_AXIS)
    assert result.verdict == "doubtful" and result.to_dict()["doubtful"] == ["tumour_found"]
    assert warning_for(result)["message"].startswith("Doubtful")


def test_refuse_only_implausible_results():
    assert refuses(IMPLAUSIBLE, "refuse") and not refuses(IMPLAUSIBLE, "warn")
    assert not refuses("doubtful", "refuse") and not refuses(PLAUSIBLE, "refuse")
    with pytest.raises(ValueError, match="on_implausible"):
        refuses(PLAUSIBLE, "ignore")


def test_checks_run_without_torch(tmp_path):
    import subprocess
    import sys

    code = ("import sys; sys.modules['torch'] = None\n"
            "import numpy as np\n"
            "from voxmmsd.plausibility.verdict import assess\n"
            "from voxmmsd.infer.components import remove_components_by_evidence\n"
            "img = {k: np.random.default_rng(0).random((20, 20, 20)).astype('f4') + 1 for k in ('t1n', 't1c')}\n"
            "lab = np.zeros((20, 20, 20), np.uint8); lab[5:10, 5:10, 5:10] = 2\n"
            "print(assess(img, lab, (1, 1, 1)).verdict)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() in ("plausible", "doubtful", "implausible")
