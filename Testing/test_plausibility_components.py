"""Component rules that use evidence (voxmmsd.infer.components, voxmmsd.plausibility.evidence).

The known failure of the size-only rule, re-enacted on a hand-made brain: a 13 mL false "tumour"
component near the midline (normal tissue: not bright on FLAIR, not enhancing) is larger than the
real 7.5 mL tumour; with a 20 mL limit the size rule keeps the false one and removes the tumour.
"""

from __future__ import annotations

import numpy as np
import pytest
import support.plausibility_phantom as ph
from voxmmsd.infer.components import relabel_et_by_evidence, remove_components_by_evidence
from voxmmsd.infer.postprocess import remove_small_components
from voxmmsd.plausibility.evidence import main_component, tumour_components

VOXEL_ML = 0.008
N20 = int(20 / VOXEL_ML)


def ball(centre_mm, radius_mm):
    z, y, x = (np.arange(n) * 2.0 - (n - 1) for n in ph.SHAPE)
    zz, yy, xx = np.meshgrid(z, y, x, indexing="ij")
    return (zz - centre_mm[0]) ** 2 + (yy - centre_mm[1]) ** 2 + (xx - centre_mm[2]) ** 2 <= radius_mm ** 2


@pytest.fixture(scope="module")
def scene():
    """A real 7.5 mL tumour (radius 12 mm) on the right and a false 13 mL 'ET' ball on normal tissue near the
    midline; the label map holds both."""
    tissues = ph.tissue(0, tumour_at=(6.0, -10.0, -36.0), tumour_mm=12.2)
    images = ph.images_of(tissues, 0)
    label = ph.LABEL_OF[tissues]
    false = ball((20.0, 30.0, 4.0), 14.6) & (tissues != ph.BACKGROUND) & (label == 0)
    label = label.copy()
    label[false] = 3
    return images, label, false


def test_the_scene_re_enacts_the_known_failure(scene):
    images, label, false = scene
    real = np.count_nonzero((label > 0) & ~false) * VOXEL_ML
    assert 6.5 < real < 8.5 and 12 < np.count_nonzero(false) * VOXEL_ML < 14
    kept, _ = remove_small_components(label, N20, keep_largest=True)  # the size-only rule
    assert np.array_equal(kept > 0, false)  # kept the false positive, removed the tumour


def test_the_evidence_rule_keeps_the_tumour_and_removes_the_false_component(scene):
    images, label, false = scene
    comps, evidence = tumour_components(images, label, ph.SPACING)
    main = main_component(evidence)
    assert main.fits and not np.any(false[comps == main.index])
    out, notes = remove_components_by_evidence(label, images, ph.SPACING, N20)
    assert not np.any(out[false]) and np.array_equal(out > 0, (label > 0) & ~false)
    assert len(notes) == 1 and "does not look like tumour" in notes[0] and "kept the main lesion" in notes[0]


def test_a_small_piece_next_to_the_lesion_stays_a_far_one_goes(scene):
    images, label, false = scene
    lab = np.where(false, 0, label).astype(np.uint8)
    near = ball((6.0, -10.0, -16.0), 4.0) & (lab == 0)  # 4 mm beyond the tumour's edge, on its oedema side
    far = ball((-30.0, 40.0, 30.0), 4.0)
    lab[near] = 2
    lab[far] = 2
    out, _ = remove_components_by_evidence(lab, images, ph.SPACING, N20)
    assert np.all(out[near] == 2) and not np.any(out[far])


def test_without_evidence_the_size_rule_applies_around_the_largest(scene):
    images, label, false = scene
    no_t2 = {k: v for k, v in images.items() if k in ("t1n",)}  # nothing to judge brightness or enhancement by
    out, _ = remove_components_by_evidence(label, no_t2, ph.SPACING, N20)
    assert np.array_equal(out > 0, false)  # the larger one, as before: no evidence to prefer the other


def test_rule_off_changes_nothing(scene):
    images, label, _ = scene
    out, notes = remove_components_by_evidence(label, images, ph.SPACING, 0)
    assert out is label and notes == []


def test_et_rule_keeps_the_enhancing_et_and_relabels_a_larger_non_enhancing_one(scene):
    images, label, false = scene
    out, notes = relabel_et_by_evidence(label, images, ph.SPACING, int(1 / VOXEL_ML))
    assert np.all(out[false] == 1)  # the false 'ET' (not enhancing) becomes NETC
    real_et = (label == 3) & ~false
    assert np.all(out[real_et] == 3) and notes and "main ET" in notes[0]
