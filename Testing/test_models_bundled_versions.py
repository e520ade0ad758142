"""A bundled default with another version of it beside it (<id>/<version>/): both resolvable."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_models_package import build_tiny_package
from voxmmsd.models.catalog import bundled, resolve_model


def test_default_and_a_second_version_side_by_side(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    res = tmp_path / "models"
    base = build_tiny_package(res / "tiny-default", model_id="tiny-default", version="1.0.0", export_onnx=False)
    build_tiny_package(base / "2.0.0", model_id="tiny-default", version="2.0.0", export_onnx=False, seed=1)
    monkeypatch.setenv("VOXMMSD_RESOURCES", str(res))
    assert bundled("tiny-default") == base
    assert bundled("tiny-default", "1.0.0") == base
    assert bundled("tiny-default", "2.0.0") == base / "2.0.0"
    assert bundled("tiny-default", "3.0.0") is None
    assert resolve_model("tiny-default").version == "1.0.0"
    assert resolve_model("tiny-default@2.0.0").version == "2.0.0"
    assert resolve_model(str(base)).version == "1.0.0"  # the folder itself still loads (the sub-folder is ignored)
