"""Checks of the label map against the images (voxmmsd.plausibility.appearance) on hand-made brains:
the correct label passes; swapped T1n/T1c, ET on normal tissue, another patient's FLAIR, a map spread
over normal tissue and a map that leaves the lesion out each fail the check made for them."""

from __future__ import annotations

import numpy as np
import pytest
import support.plausibility_phantom as ph
from voxmmsd.plausibility import appearance
from voxmmsd.plausibility.reference import prepare


@pytest.fixture(scope="module")
def phantom():
    return ph.case(0)


def run(check, images, label):
    return check(prepare(images, label, ph.SPACING, lr_axis=ph.LR_AXIS))


def test_correct_label_passes_every_appearance_check(phantom):
    images, label = phantom
    for check in (appearance.enhancement, appearance.et_bright_on_t1c, appearance.flair_hyperintensity,
                  appearance.hyperintense_share, appearance.lesion_coverage):
        result = run(check, images, label)
        assert result.status == "pass", (result.name, result.value)


def test_enhancement_fails_when_t1n_and_t1c_are_swapped(phantom):
    images, label = phantom
    good = run(appearance.enhancement, images, label).value
    bad = run(appearance.enhancement, {**images, "t1n": images["t1c"], "t1c": images["t1n"]}, label)
    assert bad.status == "fail" and bad.value == pytest.approx(-good, abs=1e-5)


def test_et_on_normal_white_matter_is_not_bright_on_t1c(phantom):
    images, label = phantom
    wrong = label.copy()
    wrong[label == 3] = 2
    wrong[(ph.tissue(0) == ph.WM) & (np.arange(label.shape[2]) > 40)[None, None, :]] = 3  # WM of the other side
    # WM is brightish on T1c (this check only ever makes a result doubtful: on the development cases a real
    # ET reached -0.22), but far less bright than real ET, and it gains nothing with contrast: enhancement fails
    true_et = run(appearance.et_bright_on_t1c, images, label).value
    assert run(appearance.et_bright_on_t1c, images, wrong).value < true_et - 1.0
    assert run(appearance.enhancement, images, wrong).status == "fail"


def test_small_et_is_not_judged(phantom):
    images, label = phantom
    tiny = label.copy()
    tiny[tiny == 3] = 1
    tiny[32, 40, 17] = 3
    assert run(appearance.enhancement, images, tiny).status == "not_applicable"


def test_tumour_on_another_patients_flair_is_not_hyperintense(phantom):
    images, label = phantom
    other, _ = ph.case(7, tumour_at=(0.0, 10.0, 30.0))
    assert run(appearance.flair_hyperintensity, {**images, "t2f": other["t2f"]}, label).status == "fail"
    assert run(appearance.lesion_coverage, {**images, "t2f": other["t2f"]}, label).status == "fail"


def test_a_map_spread_over_normal_tissue_has_a_low_hyperintense_share(phantom):
    from scipy import ndimage

    images, label = phantom
    big = label.copy()
    big[ndimage.binary_dilation(label > 0, iterations=8) & (ph.tissue(0) > 0) & (label == 0)] = 2
    result = run(appearance.hyperintense_share, images, big)
    assert result.status in ("doubtful", "fail") and result.value < 0.5


def test_a_map_of_the_core_only_leaves_the_lesion_uncovered(phantom):
    images, label = phantom
    core = np.where(np.isin(label, (1, 3)), label, 0).astype(np.uint8)
    result = run(appearance.lesion_coverage, images, core)
    assert result.status == "fail" and result.value < 0.35


def test_appearance_ignores_the_intensity_scale(phantom):
    images, label = phantom
    scaled = {k: np.where(v != 0, 3.0 * v + 100.0, 0).astype(np.float32) for k, v in images.items()}
    for check in (appearance.enhancement, appearance.flair_hyperintensity, appearance.lesion_coverage):
        assert run(check, images, label).value == pytest.approx(run(check, scaled, label).value, rel=1e-4)
