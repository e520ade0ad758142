"""Dependency installation inside Slicer: the computed plan and its order (PyTorch through the
PyTorch extension first, then one pip run that cannot replace torch, numpy, SimpleITK or
requests), and that segmentation really needs neither PyTorch nor matplotlib: the real
engine segments a case in a process where importing them fails."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

MODULE_DIR = Path(__file__).resolve().parents[1] / "VoxMMSDSegmentation"
if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))

from VoxMMSDSegmentationLib import dependencies  # noqa: E402
from VoxMMSDSegmentationLib.dependencies import InstallPlan  # noqa: E402


def finder(present):
    return lambda name: object() if name in present else None


def test_inference_plan_needs_no_torch_and_no_matplotlib():
    plan = dependencies.install_plan(training=False, gpu=False, find_spec=finder(set()))
    assert not plan.torch
    names = " ".join(plan.pip)
    assert "onnxruntime>=1.16" in plan.pip and "torch" not in names and "matplotlib" not in names
    assert "monai" not in names
    gpu = dependencies.install_plan(training=False, gpu=True, find_spec=finder({"scipy", "slicerio", "jsonschema"}))
    assert gpu == InstallPlan(torch=False, pip=("onnxruntime-gpu>=1.16",))


def test_training_plan_puts_torch_first():
    plan = dependencies.install_plan(training=True, gpu=False, find_spec=finder({"scipy", "onnxruntime"}))
    assert plan.torch and "monai>=1.3" in plan.pip and "matplotlib>=3.5" in plan.pip
    steps = plan.steps()
    assert steps[0].startswith("PyTorch through the PyTorch extension") and steps[1].startswith("pip: ")
    text = dependencies.describe(plan)
    assert text.index("PyTorch extension") < text.index("monai")
    assert dependencies.install_plan(training=True, gpu=False, find_spec=finder({"torch"})).torch is False
    assert dependencies.describe(InstallPlan()) == "" and InstallPlan().empty


def test_install_runs_torch_first_then_pip_with_pins():
    """The PyTorch extension's torch is installed first and pinned while pip resolves MONAI."""
    installed = {"numpy": "1.26.4", "SimpleITK": "2.4.0"}
    calls = []

    def version_of(name):
        if name not in installed:
            raise importlib.metadata.PackageNotFoundError(name)
        return installed[name]

    def install_torch():
        calls.append(("torch",))
        installed["torch"] = "2.4.1+cu121"  # what PyTorchUtils put there

    def pip_install(args):
        constraints = Path(args[args.index("-c") + 1]).read_text().split()
        calls.append(("pip", [a for a in args if not a.startswith("-") and a != args[args.index("-c") + 1]],
                      constraints))

    plan = InstallPlan(torch=True, pip=("monai>=1.3", "safetensors>=0.4"))
    dependencies.install(plan, pip_install, install_torch, version_of)
    assert calls[0] == ("torch",)
    assert calls[1][1] == ["monai>=1.3", "safetensors>=0.4"]  # one pip run for everything
    assert set(calls[1][2]) == {"torch==2.4.1+cu121", "numpy==1.26.4", "SimpleITK==2.4.0"}

    def pip_that_replaces_torch(args):
        installed["torch"] = "2.5.0"

    with pytest.raises(RuntimeError, match="changed torch==2.4.1"):
        dependencies.install(InstallPlan(pip=("monai>=1.3",)), pip_that_replaces_torch, None, version_of)
    with pytest.raises(RuntimeError, match="PyTorch extension"):
        dependencies.install(InstallPlan(torch=True), calls.append, None, version_of)


def test_constraints_use_the_real_installed_versions():
    pins = dependencies.constraints(("numpy", "no-such-distribution-voxmmsd"))
    assert pins == [f"numpy=={importlib.metadata.version('numpy')}"]


def test_self_test_skip_reason():
    assert dependencies.self_test_skip_reason(finder(set(dependencies.INFERENCE))) == ""
    reason = dependencies.self_test_skip_reason(finder({"scipy", "jsonschema"}))
    assert reason.startswith("VoxMMSD self-test skipped: ") and "onnxruntime>=1.16" in reason
    assert "slicerio>=1.1" in reason and "scipy" not in reason


def test_has_nvidia_gpu():
    assert dependencies.has_nvidia_gpu(lambda name: None) is False
    assert dependencies.has_nvidia_gpu(lambda name: "/usr/bin/nvidia-smi") is True


BLOCKED_RUN = textwrap.dedent("""
    import importlib.abc, sys
    BLOCK = set(sys.argv[1].split(","))

    class Blocker(importlib.abc.MetaPathFinder):  # an install without these packages
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in BLOCK:
                raise ModuleNotFoundError("not installed here: " + name)
            return None

    sys.meta_path.insert(0, Blocker())
    from voxmmsd.cli.main import main
    sys.exit(main(sys.argv[2:]))
""")


def test_segmentation_runs_without_torch_or_training_packages(tmp_path):
    """The real engine segments a case (ONNX Runtime) in a process that cannot import torch,
    matplotlib or any other training-only package: the inference plan is complete."""
    pytest.importorskip("torch")  # only to build the tiny ONNX model package here
    import torch
    from voxmmsd import synthetic
    from voxmmsd.models.package import save_package
    from voxmmsd.nets.unet import UNetConfig, VoxUNet
    from voxmmsd.preprocessing import PreprocessConfig

    torch.manual_seed(0)
    cfg = UNetConfig(channels=(4, 8, 16, 32, 64))
    package = tmp_path / "tiny"
    save_package(package, VoxUNet(cfg).eval().state_dict(), cfg, PreprocessConfig(), model_id="tiny-test",
                 version="0.0.1", export_onnx=True)
    case = tmp_path / "case"
    synthetic.write_case(case, "case000", seed=0)
    script = tmp_path / "blocked.py"
    script.write_text(BLOCKED_RUN)
    training_only = ["torch", "matplotlib"] + [n for n in dependencies.TRAINING]
    done = subprocess.run([sys.executable, str(script), ",".join(training_only), "segment", str(case), "--out",
                           str(tmp_path / "out"), "--model", str(package), "--backend", "onnx", "--device", "cpu",
                           "--progress", "json"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert (tmp_path / "out" / "segmentation.seg.nrrd").is_file() and (tmp_path / "out" / "report.json").is_file()
