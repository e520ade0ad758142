"""Size, number and place of the tumour (voxmmsd.plausibility.spatial) on hand-made label maps."""

from __future__ import annotations

import numpy as np
import pytest
import support.plausibility_phantom as ph
from voxmmsd.plausibility import spatial
from voxmmsd.plausibility.reference import prepare


@pytest.fixture(scope="module")
def phantom():
    return ph.case(0)


def run(check, images, label, lr_axis=ph.LR_AXIS):
    return check(prepare(images, label, ph.SPACING, lr_axis=lr_axis))


def test_empty_result_is_doubtful_never_a_failure(phantom):
    images, label = phantom
    empty = run(spatial.tumour_found, images, np.zeros_like(label))
    assert empty.status == "doubtful" and empty.value == 0.0
    assert run(spatial.tumour_found, images, label).value == pytest.approx(np.count_nonzero(label) * 0.008)


def test_half_the_brain_labelled_fails(phantom):
    images, label = phantom
    assert run(spatial.brain_fraction, images, label).status == "pass"
    half = np.where((ph.tissue(0) > 0) & (np.arange(label.shape[2]) < 34)[None, None, :], 2, 0).astype(np.uint8)
    result = run(spatial.brain_fraction, images, half)
    assert result.status == "fail" and result.value > 0.4


def test_scattered_pieces_fail_the_component_count(phantom):
    images, label = phantom
    assert run(spatial.components, images, label).value == 1
    pieces = np.zeros_like(label)
    for i in range(8):  # eight separate 1.7 mL cubes
        z, y = 8 + 12 * (i % 4), 20 + 30 * (i // 4)
        pieces[z:z + 6, y:y + 6, 30:36] = 2
    result = run(spatial.components, images, pieces)
    assert result.status == "fail" and result.value == 8


def test_mirror_symmetric_tumour_fails(phantom):
    images, label = phantom
    assert run(spatial.mirror_overlap, images, label).value < 0.05
    both = np.maximum(label, label[:, :, ::-1])  # the same "tumour" in both hemispheres
    result = run(spatial.mirror_overlap, images, both)
    assert result.status == "fail" and result.value > 0.9
    assert run(spatial.mirror_overlap, images, both, lr_axis=None).status == "not_applicable"
