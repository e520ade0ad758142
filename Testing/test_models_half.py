"""Half-precision model packages: half the size, same answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from voxmmsd.models.package import load_package, save_package
from voxmmsd.nets.unet import UNetConfig, VoxUNet
from voxmmsd.nets.weights import load_into, load_weights
from voxmmsd.preprocessing import PreprocessConfig

NET = UNetConfig(channels=(8, 16, 32, 64, 128))


def test_half_precision_package(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = VoxUNet(NET).eval()
    full = save_package(tmp_path / "full", model.state_dict(), NET, PreprocessConfig(), model_id="m", version="1")
    half = save_package(tmp_path / "half", model.state_dict(), NET, PreprocessConfig(), model_id="m", version="1",
                        half_precision=True)
    for name in ("weights.safetensors", "model.onnx"):
        assert (half / name).stat().st_size < 0.6 * (full / name).stat().st_size, name
    pkg = load_package(half)  # checksums and schema still verified
    state, _ = load_weights(pkg.folder / "weights.safetensors")
    assert state["decoder.out_conv.weight"].dtype == torch.float16
    reloaded = VoxUNet(NET).eval()
    load_into(reloaded, state, strict=True)
    x = np.random.default_rng(1).random((1, 4, 32, 32, 32), dtype=np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
        got_torch = reloaded(torch.from_numpy(x)).numpy()
    got_onnx = ort.InferenceSession(str(half / "model.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {"image": x})[0]
    scale = np.abs(ref).max()
    assert np.abs(got_torch - ref).max() < 1e-2 * scale
    assert np.abs(got_onnx - ref).max() < 1e-2 * scale
    assert (got_onnx.argmax(1) == got_torch.argmax(1)).mean() > 0.999
