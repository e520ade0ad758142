"""Python packages the engine needs inside Slicer, what is missing, and in which order to install it.

Nothing is installed at import or in the module constructor: the Widget asks the user
on the first Apply (or Start) and then calls :func:`install` with Slicer's pip.

Order matters. MONAI requires torch: pip-installing it first would pull PyPI's torch
(CPU-only on Windows), and the PyTorch extension would then find torch present and keep
it. So PyTorch comes first, through the PyTorch extension (``PyTorchUtils``, which picks
the CUDA build for the driver); then one pip run installs the rest with a constraints
file that pins torch and Slicer's own numpy, SimpleITK and requests to the versions
installed, so that pip can never replace them. Segmentation alone (ONNX Runtime) needs
neither PyTorch nor matplotlib.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

log = logging.getLogger(__name__)

#: import name -> pip requirement (lower bounds only): what ``voxmmsd segment`` imports (ONNX Runtime path)
INFERENCE: Dict[str, str] = {
    "onnxruntime": "onnxruntime>=1.16",
    "scipy": "scipy>=1.8",
    "slicerio": "slicerio>=1.1",
    "jsonschema": "jsonschema>=4",
}
#: what pre-training and fine-tuning import on top (PyTorch itself comes from the PyTorch extension)
TRAINING: Dict[str, str] = {
    "monai": "monai>=1.3",
    "safetensors": "safetensors>=0.4",
    "tensorboard": "tensorboard>=2.12",
    "onnx": "onnx>=1.14",
    "yaml": "PyYAML>=6",
    "tqdm": "tqdm>=4.60",
    "matplotlib": "matplotlib>=3.5",
}
#: distributions that pip must leave as they are (Slicer's own, and the PyTorch extension's torch)
PROTECTED: Tuple[str, ...] = ("torch", "numpy", "SimpleITK", "requests")

FindSpec = Callable[[str], object]
VersionOf = Callable[[str], str]


@dataclass(frozen=True)
class InstallPlan:
    """What to install, in order: PyTorch through the PyTorch extension, then ``pip`` in one run
    constrained by ``protect`` (each pinned to its installed version at that moment)."""

    torch: bool = False
    pip: Tuple[str, ...] = ()
    protect: Tuple[str, ...] = PROTECTED

    @property
    def empty(self) -> bool:
        return not self.torch and not self.pip

    def steps(self) -> List[str]:
        out = []
        if self.torch:
            out.append("PyTorch through the PyTorch extension (the CUDA build when a GPU is present)")
        if self.pip:
            out.append("pip: " + ", ".join(self.pip) + " (keeping " + ", ".join(self.protect) + " as installed)")
        return out


def has_nvidia_gpu(which: Callable[[str], Optional[str]] = shutil.which) -> bool:
    """Whether an NVIDIA driver is present (``nvidia-smi`` on the PATH)."""
    return which("nvidia-smi") is not None


def missing(names: Sequence[str], find_spec: FindSpec = importlib.util.find_spec) -> List[str]:
    """Import names that cannot be imported."""
    out = []
    for name in names:
        try:
            found = find_spec(name)
        except (ImportError, ValueError):
            found = None
        if found is None:
            out.append(name)
    return out


def pip_requirements(names: Sequence[str], table: Dict[str, str], gpu: bool) -> List[str]:
    """pip requirement strings for the missing import names; the GPU build of ONNX Runtime on GPUs."""
    out = []
    for name in names:
        req = table[name]
        if name == "onnxruntime" and gpu:
            req = req.replace("onnxruntime", "onnxruntime-gpu", 1)
        out.append(req)
    return out


def install_plan(training: bool = False, gpu: Optional[bool] = None,
                 find_spec: FindSpec = importlib.util.find_spec) -> InstallPlan:
    """The plan for segmentation (``training=False``) or for training jobs."""
    gpu = has_nvidia_gpu() if gpu is None else gpu
    table = dict(INFERENCE)
    if training:
        table.update(TRAINING)
    pip = pip_requirements(missing(list(table), find_spec), table, gpu)
    torch = training and bool(missing(["torch"], find_spec))
    return InstallPlan(torch=torch, pip=tuple(pip))


def describe(plan: InstallPlan) -> str:
    """The consent question shown to the user ("" when nothing is missing)."""
    if plan.empty:
        return ""
    return ("VoxMMSD needs to install into Slicer's Python, in this order:\n  " + "\n  ".join(plan.steps())
            + "\n\nThis downloads from the internet and may take several minutes. Install now?")


def constraints(protect: Sequence[str], version_of: VersionOf = importlib.metadata.version) -> List[str]:
    """``name==version`` for every protected distribution that is installed."""
    out = []
    for name in protect:
        try:
            out.append(f"{name}=={version_of(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def install(plan: InstallPlan, pip_install: Callable[[List[str]], object],
            install_torch: Optional[Callable[[], object]] = None,
            version_of: VersionOf = importlib.metadata.version) -> None:
    """Run the plan. ``pip_install`` gets pip arguments as a list (``slicer.util.pip_install``
    accepts one); ``install_torch`` installs PyTorch through the PyTorch extension."""
    if plan.torch:
        if install_torch is None:
            raise RuntimeError("PyTorch is needed for training: install the PyTorch extension "
                               "(Extensions Manager > PyTorch), restart Slicer and try again.")
        install_torch()
        importlib.invalidate_caches()
    if plan.pip:
        pins = constraints(plan.protect, version_of)
        folder = Path(tempfile.mkdtemp(prefix="voxmmsd-pip-"))
        try:
            path = folder / "constraints.txt"
            path.write_text("".join(p + "\n" for p in pins), encoding="utf-8")
            log.info("pip install %s with constraints %s", " ".join(plan.pip), ", ".join(pins))
            pip_install(list(plan.pip) + ["-c", str(path)])
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        after = constraints(plan.protect, version_of)
        changed = sorted(set(pins) - set(after))
        if changed:
            raise RuntimeError("Installing the Python packages changed " + ", ".join(changed) + "; restart Slicer "
                               "and reinstall PyTorch through the PyTorch extension if training fails.")
    importlib.invalidate_caches()


def self_test_skip_reason(find_spec: FindSpec = importlib.util.find_spec) -> str:
    """Why the module's self-test cannot run here ("" when it can): the engine's inference
    packages are missing (e.g. a build machine that never ran Apply)."""
    absent = missing(list(INFERENCE), find_spec)
    if not absent:
        return ""
    return ("VoxMMSD self-test skipped: " + ", ".join(INFERENCE[n] for n in absent) + " not installed in Slicer's "
            "Python. Press Apply once in the module (it asks before installing), or run "
            "slicer.util.pip_install(...) for them, then run the test again.")
