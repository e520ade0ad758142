"""Python packages the engine needs inside Slicer, what is missing, and how to install it.

Nothing is installed at import or in the module constructor: the Widget asks the user
on the first Apply (or Start) and then calls :func:`install` with Slicer's pip.
PyTorch comes from the PyTorch extension (it picks the CUDA build); it is only
needed for training.
"""

from __future__ import annotations

import importlib.util
import shutil
from typing import Callable, Dict, List, Optional

#: import name -> pip requirement (lower bounds only; Slicer's numpy and SimpleITK are never replaced)
INFERENCE: Dict[str, str] = {
    "onnxruntime": "onnxruntime>=1.16",
    "scipy": "scipy>=1.8",
    "slicerio": "slicerio>=1.1",
    "jsonschema": "jsonschema>=4",
    "yaml": "PyYAML>=6",
    "tqdm": "tqdm>=4.60",
    "matplotlib": "matplotlib>=3.5",
}
TRAINING: Dict[str, str] = {
    "monai": "monai>=1.3",
    "safetensors": "safetensors>=0.4",
    "tensorboard": "tensorboard>=2.12",
    "onnx": "onnx>=1.14",
}


def has_nvidia_gpu(which: Callable[[str], Optional[str]] = shutil.which) -> bool:
    """Whether an NVIDIA driver is present (``nvidia-smi`` on the PATH)."""
    return which("nvidia-smi") is not None


def missing(requirements: Dict[str, str],
            find_spec: Callable[[str], object] = importlib.util.find_spec) -> List[str]:
    """Import names of ``requirements`` that cannot be imported."""
    out = []
    for name in requirements:
        try:
            found = find_spec(name)
        except (ImportError, ValueError):
            found = None
        if found is None:
            out.append(name)
    return out


def pip_requirements(names: List[str], table: Dict[str, str], gpu: bool) -> List[str]:
    """pip requirement strings for the missing import names; the GPU build of ONNX Runtime on GPUs."""
    out = []
    for name in names:
        req = table[name]
        if name == "onnxruntime" and gpu:
            req = req.replace("onnxruntime", "onnxruntime-gpu", 1)
        out.append(req)
    return out


def install_plan(training: bool = False, gpu: Optional[bool] = None,
                 find_spec: Callable[[str], object] = importlib.util.find_spec) -> Dict[str, object]:
    """What must be installed: ``{"pip": [...], "torch": bool}``."""
    gpu = has_nvidia_gpu() if gpu is None else gpu
    table = dict(INFERENCE)
    if training:
        table.update(TRAINING)
    pip = pip_requirements(missing(table, find_spec), table, gpu)
    torch = training and bool(missing({"torch": "torch"}, find_spec))
    return {"pip": pip, "torch": torch}


def describe(plan: Dict[str, object]) -> str:
    """The consent question shown to the user."""
    lines = []
    if plan.get("pip"):
        lines.append("Python packages: " + ", ".join(plan["pip"]))  # type: ignore[arg-type]
    if plan.get("torch"):
        lines.append("PyTorch (through the PyTorch extension; the CUDA build when a GPU is present)")
    if not lines:
        return ""
    return ("VoxMMSD needs to install into Slicer's Python:\n  " + "\n  ".join(lines)
            + "\n\nThis downloads from the internet and may take several minutes. Install now?")


def install(plan: Dict[str, object], pip_install: Callable[[str], object],
            install_torch: Optional[Callable[[], object]] = None) -> None:
    """Run the plan: ``pip_install`` (e.g. ``slicer.util.pip_install``) per requirement, then torch."""
    for req in plan.get("pip", []):  # type: ignore[union-attr]
        pip_install(req)
    if plan.get("torch"):
        if install_torch is None:
            raise RuntimeError("PyTorch is needed for training: install the PyTorch extension "
                               "(Extensions Manager > PyTorch), restart Slicer and try again.")
        install_torch()
    importlib.invalidate_caches()
