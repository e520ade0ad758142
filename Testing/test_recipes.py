"""The training recipes in scripts/recipes load, the 3.0.0 pre-training recipe fits its fine-tuning recipe,
and the single-change recipes of rounds 4-6 (loss; grid, crop and batch; intensity jitter) change only that.

A backbone pre-trained with ``cpu-3.0.0-pretrain.yaml`` must load whole (all but the output layer)
into the network of ``cpu-3.0.0.yaml`` and must have seen the same inputs (spacing, normalisation),
or fine-tuning from it starts from features learnt on other images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Tuple

import pytest
import torch
from voxmmsd.finetune import config as ft_config
from voxmmsd.finetune.init import HEAD_REASON, initialise, input_mismatch
from voxmmsd.nets.unet import VoxUNet
from voxmmsd.nets.weights import read_metadata
from voxmmsd.pretrain import config as pt_config
from voxmmsd.pretrain.model import PretrainNet
from voxmmsd.pretrain.outputs import save_backbone

RECIPES = Path(__file__).resolve().parent.parent / "scripts" / "recipes"


def _is_pretrain(path: Path) -> bool:
    return "pretrain" in path.stem


@pytest.mark.parametrize("path", sorted(RECIPES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_recipe_loads_with_its_own_settings(path: Path) -> None:
    loader = pt_config.load_config if _is_pretrain(path) else ft_config.load_config
    cfg = loader(path)
    assert cfg.to_dict() != loader().to_dict(), f"{path.name} changes nothing"


def test_pretrain_recipe_matches_the_finetune_recipe_and_its_backbone_loads_whole(tmp_path: Path) -> None:
    pre = pt_config.load_config(RECIPES / "cpu-3.0.0-pretrain.yaml")
    fine = ft_config.load_config(RECIPES / "cpu-3.0.0.yaml")
    assert pre.network == fine.network and pre.preprocessing == fine.preprocessing
    block = pre.method.block_size
    assert all(s % block == 0 and s % 16 == 0 for s in pre.data.patch_size)
    assert all(p <= f for p, f in zip(pre.data.patch_size, fine.data.patch_size))  # a view fits where a crop does

    torch.manual_seed(0)
    net = PretrainNet.from_config(pre)
    path = save_backbone(net.backbone.state_dict(), tmp_path / "backbone.safetensors", pre.to_dict(), 10)
    assert input_mismatch(read_metadata(path), fine.preprocessing) == []

    model = VoxUNet(fine.network)
    result = initialise(model, tmp_path)
    own = model.state_dict()
    assert set(result.report.skipped) == {"decoder.out_conv.weight", "decoder.out_conv.bias"}
    assert set(result.report.skipped.values()) == {HEAD_REASON}
    assert len(result.report.loaded) == len(own) - 2
    key = "encoder.down4.maxpool_conv.1.conv_conv.0.weight"
    assert torch.equal(own[key], net.backbone.state_dict()[key])


def test_input_mismatch_names_spacing_and_normalisation() -> None:
    here = ft_config.load_config(RECIPES / "cpu-3.0.0.yaml").preprocessing  # 2 mm, zscore
    old = {"preprocessing": {"percentile": 99.9, "crop_margin": 2, "spacing": None}}  # 1 mm, percentile
    diffs = input_mismatch(old, here)
    assert len(diffs) == 2
    assert "the reference grid's in the weights, 2x2x2 mm here" in diffs[0]
    assert "'percentile' in the weights, 'zscore' here" in diffs[1]
    same = {"preprocessing": here.to_dict()}
    assert input_mismatch(same, here) == []
    assert input_mismatch({}, here) == []  # a PyMIC checkpoint says nothing: nothing to compare


def _changed_settings(recipe: str) -> Dict[str, Tuple[Any, Any]]:
    """``section.key`` -> (candidate's value, ``recipe``'s value) for every setting ``recipe`` changes."""
    base = ft_config.load_config(RECIPES / "cpu-3.0.0.yaml").to_dict()
    other = ft_config.load_config(RECIPES / recipe).to_dict()
    assert set(base) == set(other)
    return {f"{section}.{key}": (base[section].get(key), other[section].get(key))
            for section in base for key in set(base[section]) | set(other[section])
            if base[section].get(key) != other[section].get(key)}


def test_region_recipe_differs_from_the_candidate_only_in_its_loss() -> None:
    """Round 4 compares the loss alone: every other setting must be the candidate recipe's."""
    assert _changed_settings("cpu-3.0.0-regions.yaml") == {"train.loss": ("dice_ce", "regions")}


def test_fine_recipe_differs_from_the_candidate_only_in_grid_crop_and_batch() -> None:
    """Round 5 compares 1.5 mm with 2 mm: spacing, crop and batch change (the crop must be a multiple of 16
    and hold at least 144 mm along every axis), nothing else."""
    changed = _changed_settings("cpu-3.0.0-1.5mm.yaml")
    assert set(changed) == {"preprocessing.spacing", "data.patch_size", "data.batch_size"}
    assert changed["preprocessing.spacing"][1] == [1.5, 1.5, 1.5]
    assert all(s % 16 == 0 and s * 1.5 >= 144 for s in changed["data.patch_size"][1])
    assert changed["data.batch_size"][1] == 1


def test_nojitter_recipe_differs_from_the_candidate_only_in_its_channel_jitter() -> None:
    """Round 6 takes the per-sequence intensity jitter out and changes nothing else."""
    changed = _changed_settings("cpu-3.0.0-nojitter.yaml")
    assert set(changed) == {"data.channel_jitter"}
    base, plain = changed["data.channel_jitter"]
    assert base > 0 and plain == 0
