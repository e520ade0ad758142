"""Held-out scoring reads a network's outputs the way ``voxmmsd segment`` does: region logits as regions.

Before, :func:`voxmmsd.experiment.score.score_cases` took the argmax of the outputs whatever they meant, so a
region-output network (channels WT, TC, ET, overlapping) was scored on a wrong label map.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from voxmmsd import synthetic
from voxmmsd.data.cache import build_cache
from voxmmsd.experiment.score import score_cases
from voxmmsd.io.discovery import find_dataset
from voxmmsd.io.labels import REGIONS
from voxmmsd.preprocessing import PreprocessConfig


class Oracle(torch.nn.Module):
    """Outputs the reference label of its case as confident logits (regions or classes), whatever the input:
    scored right, it gets Dice 1 in every region. A real module with a fixed output: the point is the decoding."""

    def __init__(self, label: np.ndarray, output: str) -> None:
        super().__init__()
        lab = torch.from_numpy(np.asarray(label).astype(np.int64))
        if output == "regions":  # channel 0 unused; 1 WT, 2 TC, 3 ET (the BraTS nesting)
            chans = [torch.zeros_like(lab, dtype=torch.bool)] + [torch.from_numpy(np.isin(label, v))
                                                                  for v in REGIONS.values()]
        else:
            chans = [lab == k for k in range(4)]
        self.register_buffer("logits", torch.stack(chans).float() * 20.0 - 10.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.full((1, 4) + tuple(x.shape[2:]), -10.0)
        d, h, w = self.logits.shape[1:]
        # the whole-crop pass pads the crop centred; put the label back where the crop lies
        z0, y0, x0 = ((s - n) // 2 for s, n in zip(x.shape[2:], (d, h, w)))
        out[0, :, z0:z0 + d, y0:y0 + h, x0:x0 + w] = self.logits
        return out


@pytest.mark.parametrize("output", ["regions", "classes"])
def test_a_perfect_network_scores_dice_one_in_every_region(tmp_path: Path, output: str) -> None:
    root = synthetic.write_dataset(tmp_path / "data", n=1, geometry=synthetic.default_geometry((32, 36, 28)))
    dataset = find_dataset(root)
    cached = build_cache(dataset, tmp_path / "cache", PreprocessConfig(), "brats2023", show_progress=False)
    case = cached[0]
    assert case.label is not None and set(np.unique(case.label)) >= {1, 2, 3}  # every region present
    rows = score_cases(Oracle(case.label, output), cached, dataset.by_id(), output)
    assert {r["region"] for r in rows} == set(REGIONS)
    for r in rows:
        assert r["dice"] == pytest.approx(1.0), r
