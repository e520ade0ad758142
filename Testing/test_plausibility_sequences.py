"""Sequence identity checks (voxmmsd.plausibility.sequences) on hand-made brains: a label map, a
foreign head, swapped T2w/FLAIR and a smaller field of view, each against the correct case."""

from __future__ import annotations

import numpy as np
import pytest
import support.plausibility_phantom as ph
from voxmmsd.plausibility import sequences
from voxmmsd.plausibility.reference import prepare


@pytest.fixture(scope="module")
def phantom():
    return ph.case(0)


def run(check, images, label):
    return check(prepare(images, label, ph.SPACING, lr_axis=ph.LR_AXIS))


def test_image_content_tells_a_label_map_from_an_mr_image(phantom):
    images, label = phantom
    good = run(sequences.image_content, images, label)
    assert good.status == "pass" and good.value > 1000
    bad = run(sequences.image_content, {**images, "t2f": label.astype(np.float32)}, label)
    assert bad.status == "fail" and bad.value <= 4 and "t2f" in bad.note


def test_brain_overlap_fails_for_a_label_map_and_tolerates_a_smaller_field_of_view(phantom):
    images, label = phantom
    assert run(sequences.brain_overlap, images, label).value == pytest.approx(1.0)
    assert run(sequences.brain_overlap, {**images, "t2f": label.astype(np.float32)}, label).status == "fail"
    cut = images["t2f"].copy()
    cut[:20] = 0  # FLAIR acquired over fewer slices: a smaller brain, not another one
    part = run(sequences.brain_overlap, {**images, "t2f": cut}, label)
    assert part.status in ("pass", "doubtful") and 0.6 < part.value < 0.95


def test_same_head_fails_for_another_patients_flair(phantom):
    images, label = phantom
    own = run(sequences.same_head, images, label)
    assert own.status == "pass" and own.value > 0.6
    other, _ = ph.case(7, tumour_at=(0.0, 10.0, 30.0))
    flair = np.roll(other["t2f"], (2, -3, 2), axis=(0, 1, 2))  # another head: other gyri, placed a little apart
    foreign = run(sequences.same_head, {**images, "t2f": flair}, label)
    assert foreign.status == "fail" and foreign.value < own.value - 0.3
    assert set(foreign.details["per_sequence"]) == {"t1n", "t2w", "t2f"}


def test_same_head_ignores_the_edge_of_a_smaller_field_of_view(phantom):
    images, label = phantom
    cut = images["t2f"].copy()
    cut[:20] = 0
    assert run(sequences.same_head, {**images, "t2f": cut}, label).status == "pass"


def test_t2w_vs_flair_fails_when_they_are_swapped(phantom):
    images, label = phantom
    good = run(sequences.t2w_vs_flair, images, label)
    assert good.status == "pass" and good.value > 0.2
    swapped = {**images, "t2w": images["t2f"], "t2f": images["t2w"]}
    bad = run(sequences.t2w_vs_flair, swapped, label)
    assert bad.status == "fail" and bad.value == pytest.approx(-good.value, abs=1e-6)


def test_missing_sequences_make_checks_not_applicable(phantom):
    images, label = phantom
    only = {k: images[k] for k in ("t1n", "t1c")}
    assert run(sequences.t2w_vs_flair, only, label).status == "not_applicable"
    single = {"t1c": images["t1c"]}
    assert run(sequences.brain_overlap, single, label).status == "not_applicable"
    assert run(sequences.same_head, single, label).status == "not_applicable"


def test_sequence_checks_ignore_the_intensity_scale(phantom):
    images, label = phantom
    scaled = {k: np.where(v != 0, v * 0.004 - 2.5, 0).astype(np.float32) for k, v in images.items()}  # z-score-like
    for check in (sequences.same_head, sequences.t2w_vs_flair):
        a, b = run(check, images, label), run(check, scaled, label)
        assert a.value == pytest.approx(b.value, abs=0.02), check.__name__
