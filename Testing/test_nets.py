"""The U-Net: shapes, PyMIC parameter names, safe weight files."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from voxmmsd.errors import ModelError
from voxmmsd.nets.unet import UNetConfig, VoxUNet
from voxmmsd.nets.weights import load_into, load_weights, read_metadata, save_weights, to_pymic_checkpoint

TINY = UNetConfig(channels=(4, 8, 16, 32, 64))


def _pymic_keys(levels: int = 5) -> list:
    """Names the authors' PyMIC UNet3D uses, written out from their documented structure."""
    keys = []
    def block(prefix: str) -> None:
        for idx in (0, 4):
            keys.extend([f"{prefix}.conv_conv.{idx}.weight", f"{prefix}.conv_conv.{idx}.bias"])
        for idx in (1, 5):
            keys.extend([f"{prefix}.conv_conv.{idx}.{n}" for n in
                         ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")])
    block("encoder.in_conv")
    for i in range(1, levels):
        block(f"encoder.down{i}.maxpool_conv.1")
    for i in range(1, levels):
        keys.extend([f"decoder.up{i}.conv1x1.weight", f"decoder.up{i}.conv1x1.bias"])
        block(f"decoder.up{i}.conv")
    keys.extend(["decoder.out_conv.weight", "decoder.out_conv.bias"])
    return keys


def test_parameter_names_match_pymic() -> None:
    assert set(VoxUNet(TINY).state_dict()) == set(_pymic_keys())


def test_default_size_matches_authors_network() -> None:
    n = sum(p.numel() for p in VoxUNet().parameters())
    assert 21.3e6 < n < 21.4e6


def test_forward_and_pyramid_shapes() -> None:
    net = VoxUNet(TINY).eval()
    x = torch.randn(2, 4, 32, 48, 32)
    with torch.no_grad():
        logits = net(x)
        pyr = net.pyramid(x)
    assert logits.shape == (2, 4, 32, 48, 32)
    assert [tuple(p.shape[1:]) for p in pyr] == [(4, 32, 48, 32), (8, 16, 24, 16), (16, 8, 12, 8), (32, 4, 6, 4)]


def test_pymic_checkpoint_round_trip(tmp_path: Path) -> None:
    a = VoxUNet(TINY)
    path = tmp_path / "pymic.pt"
    torch.save(to_pymic_checkpoint(a.state_dict(), iteration=7), path)
    state, _ = load_weights(path)
    b = VoxUNet(TINY)
    report = load_into(b, state, strict=True)
    assert not report.skipped and not report.missing
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k


def test_ddp_prefix_and_mismatch_report() -> None:
    a = VoxUNet(TINY)
    state = {"module." + k: v for k, v in a.state_dict().items()}
    state["module.decoder.out_conv.weight"] = torch.zeros(2, 4, 1, 1, 1)
    state["projection.head.weight"] = torch.zeros(3)
    b = VoxUNet(TINY)
    report = load_into(b, state)
    assert "decoder.out_conv.weight" in report.skipped and "shape" in report.skipped["decoder.out_conv.weight"]
    assert "projection.head.weight" in report.skipped
    assert "decoder.out_conv.weight" in report.missing
    assert torch.equal(b.state_dict()["encoder.in_conv.conv_conv.0.weight"],
                       a.state_dict()["encoder.in_conv.conv_conv.0.weight"])
    with pytest.raises(ModelError, match="do not fit"):
        load_into(VoxUNet(TINY), state, strict=True)


def test_safetensors_with_metadata_and_half_precision(tmp_path: Path) -> None:
    a = VoxUNet(TINY)
    p = save_weights(a.state_dict(), tmp_path / "w.safetensors", {"network": TINY.to_dict()}, dtype=torch.float16)
    assert read_metadata(p)["network"]["channels"] == [4, 8, 16, 32, 64]
    state, meta = load_weights(p)
    assert state["decoder.out_conv.weight"].dtype == torch.float16
    b = VoxUNet(UNetConfig.from_dict(meta["network"]))
    load_into(b, state, strict=True)
    assert torch.allclose(b.state_dict()["decoder.out_conv.weight"], a.state_dict()["decoder.out_conv.weight"],
                          atol=1e-3)


def test_corrupt_safetensors(tmp_path: Path) -> None:
    p = save_weights(VoxUNet(TINY).state_dict(), tmp_path / "w.safetensors")
    data = bytearray(p.read_bytes())
    p.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(ModelError, match="damaged"):
        load_weights(p)


class _Evil:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_pickled_code_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "evil.pt"
    with open(p, "wb") as f:
        pickle.dump({"model_state_dict": {"x": _Evil()}}, f)
    with pytest.raises(ModelError, match="safely"):
        load_weights(p)
