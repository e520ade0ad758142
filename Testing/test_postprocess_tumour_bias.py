"""The tumour bias (inference.tumour_bias, --tumour-bias) moves the tumour/background boundary only."""

import numpy as np
import pytest
from voxmmsd.infer.postprocess import labels_from_scores


def _scores() -> np.ndarray:
    # three voxels: background clearly, background narrowly (log-odds 0.5 against SNFH), ET clearly
    s = np.full((4, 1, 1, 3), -5.0, np.float32)
    s[0, 0, 0, 0], s[2, 0, 0, 0] = 2.0, -2.0
    s[0, 0, 0, 1], s[2, 0, 0, 1], s[3, 0, 0, 1] = 0.5, 0.0, -0.2
    s[0, 0, 0, 2], s[3, 0, 0, 2] = -1.0, 3.0
    return s


def test_zero_bias_is_argmax() -> None:
    assert labels_from_scores(_scores(), "classes", 0.0).ravel().tolist() == [0, 0, 3]


def test_bias_turns_only_the_narrow_background_voxel_to_the_best_tumour_class() -> None:
    s = _scores()
    before = s.copy()
    out = labels_from_scores(s, "classes", 1.0).ravel().tolist()
    assert out == [0, 2, 3]  # SNFH (the best tumour class), not ET; the clear background stays
    np.testing.assert_array_equal(s, before)  # the caller's scores are not modified


def test_negative_bias_removes_uncertain_tumour() -> None:
    s = _scores()
    s[3, 0, 0, 2] = -0.5  # ET only 0.5 above background
    assert labels_from_scores(s, "classes", -1.0).ravel().tolist() == [0, 0, 0]


@pytest.mark.parametrize("bias,expected", [(0.0, [0, 0]), (0.5, [2, 0])])
def test_regions_threshold_moves(bias: float, expected: list) -> None:
    s = np.full((4, 1, 1, 2), -3.0, np.float32)
    s[1, 0, 0, 0] = -0.3  # WT just under the default threshold 0
    assert labels_from_scores(s, "regions", bias).ravel().tolist() == expected
