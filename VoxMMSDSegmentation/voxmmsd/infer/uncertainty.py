"""How sure the network was: numbers for ``report.json`` and a warning a user sees.

Two signals, both measured inside the predicted tumour (where a user looks):

* **confidence** (every run): per voxel, :func:`voxmmsd.infer.postprocess.confidence_map`;
  ``low_confidence_fraction`` is the share of tumour voxels below :data:`LOW_CONFIDENCE`
  (for region outputs: some region's probability between 0.25 and 0.75);
* **TTA disagreement** (with ``--tta``, whole-crop pass): the share of voxels called tumour by
  some but not all mirrored passes, out of those called tumour by any.

A warning (kind ``uncertainty``) is raised when either share exceeds its limit (for the confidence share, a
model's own typical share plus a margin where its package records one: :func:`low_confidence_limit`); an empty
result gets one of kind ``no_tumour`` (a model that fails on an input often returns nothing).
How far to trust it (docs/model-card.md, measured on out-of-fold and held-out cases): the
share separates a weak model from a strong one (CPU reduced-scale models: 0.99-1.0 of the
tumour low-confidence on every case; 1.0.0: 0.03-0.13), but within one model it did not
rank good cases above bad ones (Spearman rho -0.02 to -0.18 against mean Dice), and it did
not flag 1.0.0's confidently wrong TC/ET on the BraTS 2023 cases. A warning means "look
closely"; no warning does not mean "correct".
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import numpy as np

#: a voxel with confidence below this is "low confidence"
LOW_CONFIDENCE = 0.5
#: warn when more than this share of the predicted tumour is low confidence
MAX_LOW_FRACTION = 0.35
#: a model's own typical share (model.json ``inference.typical_low_confidence``) is exceeded by this much to warn
MARGIN = 0.1
#: warn when the mirrored TTA passes disagree on more than this share of the tumour
MAX_TTA_DISAGREEMENT = 0.25

KIND = "uncertainty"


def tta_disagreement(masks: Sequence[np.ndarray]) -> Optional[float]:
    """Share of voxels in the union of ``masks`` (bool, same shape) that not every mask holds."""
    if len(masks) < 2:
        return None
    count = np.zeros(masks[0].shape, np.uint8)
    for m in masks:
        count += m.astype(np.uint8)
    union = int(np.count_nonzero(count))
    if union == 0:
        return 0.0
    return float(np.count_nonzero(count < len(masks)) - (count.size - union)) / union


def summarise(confidence: Optional[np.ndarray], tumour: np.ndarray,
              disagreement: Optional[float] = None) -> Dict[str, Any]:
    """The ``uncertainty`` record of a report (plain floats; ``None`` where not measured)."""
    out: Dict[str, Any] = {"low_confidence_threshold": LOW_CONFIDENCE, "tumour_voxels": int(np.count_nonzero(tumour)),
                           "mean_confidence": None, "low_confidence_fraction": None,
                           "tta_disagreement": None if disagreement is None else round(float(disagreement), 4)}
    if confidence is not None and out["tumour_voxels"]:
        c = confidence[tumour]
        out["mean_confidence"] = round(float(c.mean()), 4)
        out["low_confidence_fraction"] = round(float(np.mean(c < LOW_CONFIDENCE)), 4)
    return out


def low_confidence_limit(typical: Optional[float] = None) -> float:
    """The share of low-confidence tumour above which a case is flagged: :data:`MAX_LOW_FRACTION`, or for a model
    whose package records its ``typical_low_confidence`` (on cases it segments well), that plus :data:`MARGIN`.
    A model unsure on every case (the CPU reduced-scale 2.0.0: about 1.0) then does not flag every case."""
    if typical is None:
        return MAX_LOW_FRACTION
    return max(MAX_LOW_FRACTION, float(typical) + MARGIN)


def warnings_for(record: Dict[str, Any], typical: Optional[float] = None) -> List[Dict[str, str]]:
    """``[{"kind": "uncertainty", "message": ...}]`` when the record says the result deserves a second look
    (``typical``: the package's ``inference.typical_low_confidence``, see :func:`low_confidence_limit`)."""
    out = []
    if record.get("tumour_voxels") == 0:
        out.append({"kind": "no_tumour", "message": (
            "No tumour was found. If this case has a tumour, the model failed on this input (a missing "
            "sequence or an acquisition unlike its training data are the usual reasons); do not read "
            "this as 'no tumour'.")})
    low = record.get("low_confidence_fraction")
    if low is not None and low > low_confidence_limit(typical):
        out.append({"kind": KIND, "message": (
            f"Low confidence: {100 * low:.0f}% of the predicted tumour voxels are uncertain (mean confidence "
            f"{record.get('mean_confidence', 0):.2f}): the network is unsure where the tumour and its parts are. "
            f"Check the boundaries, ET and the core carefully before use.")})
    dis = record.get("tta_disagreement")
    if dis is not None and dis > MAX_TTA_DISAGREEMENT:
        out.append({"kind": KIND, "message": (
            f"Mirrored test-time passes disagree on {100 * dis:.0f}% of the tumour: the segmentation is unstable "
            f"here; review it before use.")})
    return out
