"""--init: pre-training runs, our safetensors and PyMIC checkpoints load for real; mismatches are reported."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from voxmmsd.errors import ModelError
from voxmmsd.finetune.init import HEAD_REASON, channels_of, initialise, resolve_init
from voxmmsd.nets.unet import UNetConfig, VoxUNet
from voxmmsd.nets.weights import save_weights, to_pymic_checkpoint

TINY = UNetConfig(channels=(4, 8, 16, 32, 64))


class Custom:
    """Not a tensor: torch.load(weights_only=True) must refuse to unpickle it."""


def _donor(seed: int, cfg: UNetConfig = TINY) -> VoxUNet:
    torch.manual_seed(seed)
    return VoxUNet(cfg)


def test_pretrain_run_folder_loads_backbone_and_reports_extras(tmp_path: Path) -> None:
    donor = _donor(1)
    state = {f"backbone.{k}": v for k, v in donor.state_dict().items()}  # prefixed names are accepted
    state["head.proj.0.weight"] = torch.randn(8, 8)  # a pre-training head: not part of the U-Net
    state["backbone.decoder.up4.conv.conv_conv.0.weight"] = torch.randn(4, 3, 3, 3, 3)  # wrong shape
    run = tmp_path / "pretrain_run"
    save_weights(state, run / "backbone.safetensors", {"kind": "backbone"})
    assert resolve_init(run) == run / "backbone.safetensors"
    torch.manual_seed(2)
    model = VoxUNet(TINY)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = initialise(model, run)
    own = model.state_dict()
    key = "encoder.down2.maxpool_conv.1.conv_conv.0.weight"
    assert torch.equal(own[key], donor.state_dict()[key]) and not torch.equal(before[key], own[key])
    assert torch.equal(own["decoder.up1.conv1x1.weight"], donor.state_dict()["decoder.up1.conv1x1.weight"])
    rep = result.report
    assert "no such parameter" in rep.skipped["head.proj.0.weight"]
    assert "shape (4, 3, 3, 3, 3)" in rep.skipped["decoder.up4.conv.conv_conv.0.weight"]
    assert rep.skipped["decoder.out_conv.weight"] == HEAD_REASON
    assert torch.equal(own["decoder.out_conv.weight"], before["decoder.out_conv.weight"])  # fresh head
    assert torch.equal(own["decoder.up4.conv.conv_conv.0.weight"], before["decoder.up4.conv.conv_conv.0.weight"])
    assert len(rep.loaded) == len(own) - 3  # all but the mismatched conv and the 2 head tensors
    d = result.to_dict()
    assert d["loaded"] == len(rep.loaded) and d["source"].endswith("backbone.safetensors")


def test_pymic_checkpoint_loads_with_head_when_asked(tmp_path: Path) -> None:
    donor = _donor(3)
    path = tmp_path / "authors.pt"
    torch.save(to_pymic_checkpoint(donor.state_dict(), iteration=60000), str(path))
    assert set(torch.load(str(path), weights_only=True)) == {"model_state_dict", "iteration"}
    model = VoxUNet(TINY)
    result = initialise(model, path, keep_head=True)
    assert not result.report.skipped and not result.report.missing
    for k, v in donor.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k


def test_wrong_network_settings_fail_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "big.pt"
    torch.save({"model_state_dict": _donor(0, UNetConfig(channels=(8, 16, 32, 64, 128))).state_dict()}, str(path))
    assert channels_of(torch.load(str(path), weights_only=True)["model_state_dict"]) == [8, 16, 32, 64, 128]
    with pytest.raises(ModelError, match=r"network.channels=\[8,16,32,64,128\]"):
        initialise(VoxUNet(TINY), path)


def test_unsafe_or_missing_sources(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no such file"):
        resolve_init(tmp_path / "nothing")
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(ModelError, match="backbone.safetensors"):
        resolve_init(tmp_path / "empty_run")

    torch.save({"model_state_dict": {"x": torch.zeros(1)}, "obj": Custom()}, str(tmp_path / "pickled.pt"))
    with pytest.raises(ModelError, match="safely"):
        initialise(VoxUNet(TINY), tmp_path / "pickled.pt")
