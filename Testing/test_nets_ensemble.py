"""Fold ensembles: the average of the members' probabilities, packaged, exported and segmented."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_models_package import tiny_state
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
    assert np.isfinite(pkg.meta["network"]["members"])
