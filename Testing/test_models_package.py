"""Model packages: save/load, schema, checksums (tampering), atomic replacement, ONNX export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from support.packages import TINY, build_tiny_package, tiny_state
from voxmmsd.errors import ModelError
from voxmmsd.models.package import MODEL_JSON, ONNX, WEIGHTS, load_package, save_package


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_package(tmp_path_factory.mktemp("pkg") / "tiny")


def test_save_and_load_round_trip(package: Path) -> None:
    pkg = load_package(package)
    assert pkg.id == "tiny" and pkg.version == "0.1"
    assert pkg.sequences == ("t1n", "t1c", "t2w", "t2f")
    assert [e.key for e in pkg.label_table] == ["NETC", "SNFH", "ET"]
    assert pkg.label_table[2].type[1] == "108369006"
    assert sorted(p.name for p in package.iterdir()) == [MODEL_JSON, ONNX, WEIGHTS]
    assert pkg.meta["training"] == {"data": "synthetic"}
    state = pkg.load_state_dict()
    original, _ = tiny_state(0)
    for k, v in original.items():
        assert np.array_equal(state[k].numpy(), v.numpy()), k
    assert pkg.unet_config().channels == TINY


def test_onnx_export_matches_torch(package: Path) -> None:
    import onnxruntime as ort
    import torch
    from voxmmsd.nets.unet import VoxUNet
    from voxmmsd.nets.weights import load_into

    pkg = load_package(package)
    net = VoxUNet(pkg.unet_config())
    load_into(net, pkg.load_state_dict(), strict=True)
    x = np.random.default_rng(1).random((2, 4, 16, 48, 32), dtype=np.float32)  # other batch and sizes
    with torch.no_grad():
        ref = net.eval()(torch.from_numpy(x)).numpy()
    got = ort.InferenceSession(str(pkg.onnx_path), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() < 1e-3 * max(1.0, np.abs(ref).max())


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_tampered_weights_are_refused(package: Path, tmp_path: Path) -> None:
    bad = _copy(package, tmp_path / "bad")
    data = bytearray((bad / WEIGHTS).read_bytes())
    data[-5] ^= 0xFF
    (bad / WEIGHTS).write_bytes(bytes(data))
    with pytest.raises(ModelError, match="tampered"):
        load_package(bad)


def test_tampered_onnx_is_refused(package: Path, tmp_path: Path) -> None:
    bad = _copy(package, tmp_path / "bad")
    with open(bad / ONNX, "ab") as f:
        f.write(b"\0")
    with pytest.raises(ModelError, match="tampered.*model.onnx"):
        load_package(bad)


def test_corrupt_model_json(package: Path, tmp_path: Path) -> None:
    bad = _copy(package, tmp_path / "bad")
    (bad / MODEL_JSON).write_text("{ not json", encoding="utf-8")
    with pytest.raises(ModelError, match="damaged"):
        load_package(bad)


def test_schema_violation_names_the_field(package: Path, tmp_path: Path) -> None:
    bad = _copy(package, tmp_path / "bad")
    meta = json.loads((bad / MODEL_JSON).read_text(encoding="utf-8"))
    meta["sequences"] = ["t1n", "dwi"]
    (bad / MODEL_JSON).write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(ModelError, match="sequences/1"):
        load_package(bad)


def test_missing_file_and_missing_folder(package: Path, tmp_path: Path) -> None:
    bad = _copy(package, tmp_path / "bad")
    (bad / ONNX).unlink()
    with pytest.raises(ModelError, match="incomplete: model.onnx is missing"):
        load_package(bad)
    with pytest.raises(ModelError, match="not found"):
        load_package(tmp_path / "nowhere")


def test_save_replaces_atomically_and_failure_keeps_old(tmp_path: Path) -> None:
    import torch
    from voxmmsd.preprocessing import PreprocessConfig

    target = build_tiny_package(tmp_path / "m", version="1", export_onnx=False)
    build_tiny_package(target, version="2", export_onnx=False)
    assert load_package(target).version == "2"
    state, cfg = tiny_state(0)
    state = dict(state)
    state["decoder.out_conv.weight"] = torch.zeros(3, 4, 1, 1, 1)  # wrong shape: must fail before replacing
    with pytest.raises(ModelError):
        save_package(target, state, cfg, PreprocessConfig(), model_id="tiny", version="3", export_onnx=False)
    assert load_package(target).version == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no temporary folders left


def test_package_without_onnx_loads(tmp_path: Path) -> None:
    pkg = load_package(build_tiny_package(tmp_path / "p", export_onnx=False))
    assert pkg.onnx_path is None
