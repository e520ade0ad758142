"""The wheel (``pip install .``) carries the bundled default model: built from a copy of the source, installed
into a new virtual environment, it segments a synthetic case with the default model from outside the source tree.

The new environment gets the wheel alone (``--no-deps``) and sees this environment's packages (numpy, SimpleITK,
ONNX Runtime, PyTorch) through a ``.pth`` line, so that nothing is downloaded; ``PYTHONPATH`` is removed, so
``import voxmmsd`` can only find the installed wheel.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from voxmmsd import synthetic
from voxmmsd.models.catalog import DEFAULT_MODEL

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "Resources" / "models" / DEFAULT_MODEL


def _clean_env() -> dict:
    """This environment without what would point the new one at the source tree."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VOXMMSD_RESOURCES", "VOXMMSD_CATALOG")}


def _build_wheel(tmp: Path) -> Path:
    """A wheel built from a copy of what the source distribution holds (the real Resources/ linked in)."""
    src = tmp / "src"
    (src / "VoxMMSDSegmentation").mkdir(parents=True)
    for name in ("pyproject.toml", "setup.py", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(REPO / "VoxMMSDSegmentation" / "voxmmsd", src / "VoxMMSDSegmentation" / "voxmmsd",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (src / "Resources").symlink_to(REPO / "Resources", target_is_directory=True)
    out = tmp / "wheels"
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
                          "--no-index", "-q", "-w", str(out)], capture_output=True, text=True, timeout=600,
                         env=_clean_env())
    assert res.returncode == 0, res.stdout + res.stderr
    wheels = list(out.glob("voxmmsd-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.mark.slow  # ~25 s to build the 80 MB wheel, ~15 s to segment with the full-size default model on 2 cores
def test_wheel_carries_the_default_model_and_segments_outside_the_source_tree(tmp_path: Path) -> None:
    if not MODEL.joinpath("model.json").is_file():
        pytest.skip("no bundled default model in this checkout")
    wheel = _build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    inside = f"voxmmsd/resources/models/{DEFAULT_MODEL}/"
    for f in MODEL.iterdir():
        if f.is_file():
            assert inside + f.name in names, f.name
    assert "voxmmsd/resources/models/catalog.json" in names
    assert not [n for n in names if n.startswith(inside) and n.count("/") > 4], "older versions stay out"

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    res = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
                          "-q", str(wheel)], capture_output=True, text=True, timeout=600, env=_clean_env())
    assert res.returncode == 0, res.stdout + res.stderr
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    outer = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(site, "outer_dependencies.pth").write_text("\n".join(sorted(outer)) + "\n", encoding="utf-8")

    elsewhere = tmp_path / "elsewhere"
    case = elsewhere / "case000"
    synthetic.write_case(case, "case000", seed=0)
    where = subprocess.run([str(python), "-c", "import voxmmsd; from voxmmsd.models.catalog import resources_dir; "
                                               "print(voxmmsd.__file__); print(resources_dir())"],
                           capture_output=True, text=True, cwd=elsewhere, env=_clean_env(), timeout=120)
    assert where.returncode == 0, where.stderr
    module, resources = where.stdout.split()
    assert Path(module).is_relative_to(Path(site)) and Path(resources).is_relative_to(Path(site)), where.stdout

    out = elsewhere / "out"
    seg = subprocess.run([str(python), "-m", "voxmmsd", "segment", str(case), "--out", str(out), "--device", "cpu",
                          "--progress", "none"], capture_output=True, text=True, cwd=elsewhere, env=_clean_env(),
                         timeout=600)
    assert seg.returncode == 0, seg.stdout + seg.stderr
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    bundled = json.loads((MODEL / "model.json").read_text(encoding="utf-8"))
    assert report["model"] == {"id": DEFAULT_MODEL, "version": bundled["version"]}
    found = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "segmentation.nii.gz"))) > 0
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(case / "case000-seg.nii.gz"))) > 0
    dice = 2 * np.logical_and(found, truth).sum() / (found.sum() + truth.sum())
    assert dice > 0.6, dice  # the real network found the synthetic tumour (0.85 when written)
