"""ONNX Runtime reports the providers its session really uses (``session.get_providers()``), not the
ones asked for: a CUDA provider that cannot start falls back to the CPU and the report says so."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")  # only to build the tiny model package


@pytest.fixture(scope="module")
def tiny_package(tmp_path_factory):
    from voxmmsd.models.package import load_package, save_package
    from voxmmsd.nets.unet import UNetConfig, VoxUNet
    from voxmmsd.preprocessing import PreprocessConfig

    torch.manual_seed(0)
    cfg = UNetConfig(channels=(4, 8, 16, 32, 64))
    folder = tmp_path_factory.mktemp("models") / "tiny"
    save_package(folder, VoxUNet(cfg).eval().state_dict(), cfg, PreprocessConfig(), model_id="tiny-test",
                 version="0.0.1", export_onnx=True)
    return load_package(folder)


def test_cpu_session_reports_its_providers(tiny_package):
    from voxmmsd.infer.backends.onnx_backend import OnnxBackend

    backend = OnnxBackend(tiny_package, "cpu")
    info = backend.describe()
    assert info["providers"] == backend.session.get_providers() == ["CPUExecutionProvider"]
    assert info["device"] == "cpu" and info["requested_providers"] == ["CPUExecutionProvider"]
    out = backend.forward(np.zeros((1, 4, 16, 16, 16), np.float32))
    assert out.shape[:2] == (1, tiny_package.num_classes)


def test_a_cuda_provider_that_cannot_start_is_reported_as_cpu(tiny_package, monkeypatch):
    """Where onnxruntime-gpu lists CUDA but its libraries are missing, the session runs on the CPU."""
    import onnxruntime as ort
    from voxmmsd.infer.backends import onnx_backend

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("a working CUDA provider is present here")
    monkeypatch.setattr(onnx_backend, "providers_for", lambda device: ["CUDAExecutionProvider",
                                                                        "CPUExecutionProvider"])
    backend = onnx_backend.OnnxBackend(tiny_package, "auto")
    info = backend.describe()
    assert info["requested_providers"][0] == "CUDAExecutionProvider"
    assert info["providers"] == ["CPUExecutionProvider"] and info["device"] == "cpu"
