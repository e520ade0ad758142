"""The synthetic case generator is deterministic and anatomically plausible."""

from __future__ import annotations

import numpy as np
from voxmmsd import synthetic


def test_deterministic() -> None:
    g = synthetic.default_geometry((24, 28, 20))
    p = synthetic.random_phantom(3)
    a = synthetic.sample_sequence(p, g, "t1c", seed=3)
    b = synthetic.sample_sequence(synthetic.random_phantom(3), g, "t1c", seed=3)
    np.testing.assert_array_equal(a, b)
    c = synthetic.sample_sequence(synthetic.random_phantom(4), g, "t1c", seed=4)
    assert not np.array_equal(a, c)


def test_all_tumour_labels_and_contrasts() -> None:
    g = synthetic.default_geometry()
    p = synthetic.random_phantom(0)
    lab = synthetic.sample_label(p, g)
    assert set(np.unique(lab)) == {0, 1, 2, 3}
    t1c = synthetic.sample_sequence(p, g, "t1c", noise=0)
    flair = synthetic.sample_sequence(p, g, "t2f", noise=0)
    # enhancing tumour is brightest on T1c; oedema brightest on FLAIR
    assert t1c[lab == 3].mean() > t1c[lab == 2].mean() > 0
    assert flair[lab == 2].mean() > flair[(lab == 0) & (flair > 0)].mean()
