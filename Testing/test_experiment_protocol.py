"""The model protocol's tables and the default-model rule, on hand-made score rows."""

import math

from voxmmsd.experiment.protocol import by_group, decide, mean_dice, region_summary, shift_table


def _rows(dice, fp=0.0, cases=("a", "b", "c", "d")):
    out = []
    for i, c in enumerate(cases):
        for reg, d in zip(("WT", "TC", "ET"), dice):
            v = d[i] if isinstance(d, (list, tuple)) else d
            out.append({"case_id": c, "region": reg, "status": "ok", "dice": v, "lesion_dice": v,
                        "hd95_mm": 5.0, "fp_far_ml": fp if reg == "WT" else 0.0})
    return out


def test_region_summary_and_groups():
    rows = _rows(([0.9, 0.8, 0.7, 0.6], 0.5, 0.4))
    s = region_summary(rows)
    assert math.isclose(s["WT"]["dice"]["mean"], 0.75) and s["WT"]["dice"]["n"] == 4
    assert math.isclose(mean_dice(s), (0.75 + 0.5 + 0.4) / 3)
    g = by_group(rows, {"a": "x", "b": "x", "c": "y", "d": "y"})
    assert math.isclose(g["x"]["WT"]["dice"]["mean"], 0.85) and math.isclose(g["y"]["WT"]["dice"]["mean"], 0.65)
    only = region_summary(rows, ["a"])
    assert only["WT"]["dice"]["n"] == 1 and math.isnan(only["WT"]["dice"]["sd"])


def test_shift_drop_is_paired_on_common_cases():
    clean = _rows((0.9, 0.8, 0.7))
    shifted = _rows((0.7, 0.8, 0.7), fp=12.0, cases=("a", "b"))
    t = shift_table(clean, {"zscore": shifted})
    assert math.isclose(t["zscore"]["WT"]["drop"], 0.2) and t["zscore"]["WT"]["n"] == 2
    assert t["zscore"]["TC"]["drop"] == 0.0 and t["zscore"]["fp_far_ml_median"] == 12.0


def _arm(dice_wt, fp, groups):
    rows = _rows((dice_wt, 0.7, 0.6), fp=fp)
    return {"clean": region_summary(rows), "sources": by_group(rows, groups),
            "shift": shift_table(rows, {"bias": _rows((dice_wt, 0.7, 0.6), fp=fp)})}


def test_rule_wins_and_each_way_to_lose():
    groups = {"a": "x", "b": "x", "c": "y", "d": "y"}
    base = _arm(0.8, 5.0, groups)
    good = _arm(0.85, 1.0, groups)
    assert decide(good, {"b": dict(base, paired=good)})["default"]
    # a source where the candidate loses more than 0.03 WT, though its mean is higher
    mixed = _arm([0.99, 0.99, 0.75, 0.75], 1.0, groups)
    verdict = decide(mixed, {"b": dict(base, paired=mixed)})
    assert not verdict["default"] and any("source y" in r for r in verdict["reasons"])
    # more far false positives under shift
    noisy = _arm(0.85, 50.0, groups)
    verdict = decide(noisy, {"b": dict(base, paired=noisy)})
    assert not verdict["default"] and any("false positives" in r for r in verdict["reasons"])
