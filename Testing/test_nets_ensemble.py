"""Fold ensembles: the average of the members' probabilities, packaged, exported and segmented."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from support.packages import tiny_state
from voxmmsd import synthetic
from voxmmsd.infer.predictor import Predictor, PredictorConfig
from voxmmsd.io.discovery import find_case
from voxmmsd.models.package import load_package, save_package
from voxmmsd.nets.ensemble import FoldEnsemble, build_network, ensemble_state, member_state
from voxmmsd.nets.unet import VoxUNet
from voxmmsd.preprocessing import PreprocessConfig

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def members():
    return [tiny_state(seed) for seed in (0, 1)]


@pytest.fixture(scope="module")
def ensemble_dir(tmp_path_factory: pytest.TempPathFactory, members) -> Path:
    cfg = dataclasses.replace(members[0][1], members=2)
    return save_package(tmp_path_factory.mktemp("ens") / "ens", ensemble_state([s for s, _ in members]), cfg,
                        PreprocessConfig(), model_id="ens", version="1", training={"training_cases": ["a"]},
                        half_precision=True)


def test_forward_is_the_log_of_the_mean_probability(members) -> None:
    cfg = dataclasses.replace(members[0][1], members=2)
    ens = build_network(cfg)
    assert isinstance(ens, FoldEnsemble) and isinstance(build_network(members[0][1]), VoxUNet)
    ens.load_state_dict(ensemble_state([s for s, _ in members]))
    nets = []
    for state, c in members:
        n = VoxUNet(c)
        n.load_state_dict(state)
        nets.append(n.eval())
    x = torch.rand(1, 4, 32, 32, 32)
    with torch.no_grad():
        want = (torch.softmax(nets[0](x), 1) + torch.softmax(nets[1](x), 1)) / 2
        got = torch.softmax(ens.eval()(x), 1)
    assert torch.allclose(got, want, atol=1e-5)
    # the two members disagree somewhere: the ensemble is not one of them
    assert not torch.equal(nets[0](x).argmax(1), nets[1](x).argmax(1))


def test_member_state_round_trip(members) -> None:
    state = ensemble_state([s for s, _ in members])
    back = member_state(state, 1)
    assert set(back) == set(members[1][0]) and all(torch.equal(back[k], members[1][0][k]) for k in back)
    assert member_state(members[0][0]) == dict(members[0][0])


def test_package_segments_with_both_backends(ensemble_dir: Path, tmp_path: Path) -> None:
    pkg = load_package(ensemble_dir)
    assert pkg.unet_config().members == 2 and pkg.meta["network"]["members"] == 2
    synthetic.write_case(tmp_path / "c", "c", seed=5, with_label=False)
    files = find_case(tmp_path / "c")
    labels = {b: Predictor(pkg, PredictorConfig(backend=b, precision="fp32")).predict_files(files).label
              for b in ("torch", "onnx")}
    assert labels["torch"].any()
    assert (labels["torch"] == labels["onnx"]).mean() > 0.999


def test_finetune_init_from_an_ensemble_takes_the_first_member(ensemble_dir: Path, members) -> None:
    from voxmmsd.finetune.init import initialise

    net = VoxUNet(members[0][1])
    initialise(net, ensemble_dir, keep_head=True)
    first = members[0][0]
    got = net.state_dict()
    key = "encoder.in_conv.conv_conv.0.weight"
    assert torch.allclose(got[key], first[key].half().float())


def test_package_ensemble_script_refuses_mismatched_members(tmp_path: Path, members) -> None:
    a = save_package(tmp_path / "a", members[0][0], members[0][1], PreprocessConfig(), model_id="m", version="1",
                     export_onnx=False, training={"cases": {"train": ["x"]}})
    b = save_package(tmp_path / "b", members[1][0], members[1][1], PreprocessConfig(spacing=(2.0, 2.0, 2.0)),
                     model_id="m", version="1", export_onnx=False, training={"cases": {"train": ["y"]}})
    script = str(ROOT / "scripts" / "package_ensemble.py")
    bad = subprocess.run([sys.executable, script, str(a), str(b), str(tmp_path / "e"), "--version", "2",
                          "--name", "n", "--description", "d"], capture_output=True, text=True)
    assert bad.returncode == 2 and "differs" in bad.stderr and not (tmp_path / "e").exists()
    c = save_package(tmp_path / "c", members[1][0], members[1][1], PreprocessConfig(), model_id="m", version="1",
                     export_onnx=False, training={"cases": {"train": ["y"]}})
    ok = subprocess.run([sys.executable, script, str(a), str(c), str(tmp_path / "e"), "--version", "2",
                         "--name", "n", "--description", "d"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    pkg = load_package(tmp_path / "e")
    assert pkg.meta["training"]["training_cases"] == ["x", "y"] and pkg.onnx_path is not None
    from voxmmsd.cli.main import main

    assert main(["models", "verify", str(tmp_path / "e")]) == 0  # the script's package passes every check of verify
    assert np.isfinite(pkg.meta["network"]["members"])


def test_ensemble_passes_the_package_checks(ensemble_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The checks of issue 22 (value ranges at load, the weights' own id/version, the ONNX graph, the forward pass of
    ``models verify``) take a fold ensemble's ``members.<i>.`` weights and its one-output graph as they are."""
    from voxmmsd.cli.main import main
    from voxmmsd.models.integrity import weights_identity
    from voxmmsd.models.limits import check_package_values
    from voxmmsd.models.smoke import forward_check

    pkg = load_package(ensemble_dir)
    check_package_values(pkg.meta, ensemble_dir / "model.json")
    assert weights_identity(pkg.weights_path)["version"] == "1"
    assert forward_check(pkg) == ["onnx", "torch"]  # both members run, through ONNX Runtime and PyTorch
    assert main(["models", "verify", str(ensemble_dir)]) == 0, caplog.text


def _rehash(folder: Path) -> None:
    import hashlib
    import json

    meta = json.loads((folder / "model.json").read_text())
    for name in meta["files"]:
        meta["files"][name] = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    (folder / "model.json").write_text(json.dumps(meta))


def test_ensemble_faults_are_refused(ensemble_dir: Path, members, tmp_path: Path,
                                     caplog: pytest.LogCaptureFixture) -> None:
    """An ensemble gets the same refusals as one network: another version's weights (checksums recomputed), a member
    with a NaN weight (only the forward pass through every member finds it), an absurd value in model.json."""
    import json
    import shutil

    from voxmmsd.cli.main import main

    cfg = dataclasses.replace(members[0][1], members=2)
    other = save_package(tmp_path / "v2" / "ens", ensemble_state([s for s, _ in members]), cfg, PreprocessConfig(),
                         model_id="ens", version="2", export_onnx=False)
    mixed = tmp_path / "mixed"
    shutil.copytree(ensemble_dir, mixed)
    shutil.copyfile(other / "weights.safetensors", mixed / "weights.safetensors")
    _rehash(mixed)
    assert main(["models", "verify", str(mixed)]) == 1
    assert "the weights say they are ens 2" in caplog.text

    states = [dict(s) for s, _ in members]
    states[1]["decoder.out_conv.bias"] = states[1]["decoder.out_conv.bias"].clone()
    states[1]["decoder.out_conv.bias"][2] = float("nan")  # the second member only
    nan = save_package(tmp_path / "nan" / "ens", ensemble_state(states), cfg, PreprocessConfig(), model_id="ens",
                       version="1", export_onnx=False)
    caplog.clear()
    assert main(["models", "verify", str(nan)]) == 1
    assert "NaN or infinite score" in caplog.text and "Traceback" not in caplog.text

    absurd = tmp_path / "absurd"
    shutil.copytree(ensemble_dir, absurd)
    meta = json.loads((absurd / "model.json").read_text())
    meta["preprocessing"]["spacing"] = [0.05, 0.05, 0.05]
    (absurd / "model.json").write_text(json.dumps(meta))
    caplog.clear()
    assert main(["models", "verify", str(absurd)]) == 1
    assert "preprocessing.spacing" in caplog.text
