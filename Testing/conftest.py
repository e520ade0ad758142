"""Shared fixtures. Tests use synthetic cases (voxmmsd.synthetic), never ../shared."""

from __future__ import annotations

from pathlib import Path

import pytest
from voxmmsd import synthetic


@pytest.fixture
def synthetic_case(tmp_path: Path) -> Path:
    """One BraTS-2023-named synthetic case folder with a label."""
    folder = tmp_path / "case000"
    synthetic.write_case(folder, "case000", seed=0)
    return folder


@pytest.fixture
def synthetic_dataset(tmp_path: Path) -> Path:
    """Four labelled synthetic cases, one sub-folder each."""
    return synthetic.write_dataset(tmp_path / "dataset", n=4)
