"""A bundled default with another version of it beside it (<id>/<version>/): both resolvable."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.packages import build_tiny_package
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


def test_every_bundled_version_is_listed_and_install_points_to_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture) -> None:
    from voxmmsd.cli.main import main
    from voxmmsd.models.catalog import bundled_versions

    res = tmp_path / "models"
    base = build_tiny_package(res / "tiny-default", model_id="tiny-default", version="2.1.0", export_onnx=False)
    for v in ("1.0.0", "2.0.0"):
        build_tiny_package(base / v, model_id="tiny-default", version=v, export_onnx=False)
    monkeypatch.setenv("VOXMMSD_RESOURCES", str(res))
    monkeypatch.setenv("VOXMMSD_HOME", str(tmp_path / "home"))
    assert bundled_versions("tiny-default") == [("1.0.0", base / "1.0.0", False), ("2.0.0", base / "2.0.0", False),
                                                ("2.1.0", base, True)]
    assert main(["models", "list"]) == 0
    listed = capsys.readouterr().out
    assert "tiny-default@1.0.0" in listed and "tiny-default@2.0.0" in listed
    assert [ln for ln in listed.splitlines() if "(default" in ln][0].lstrip().startswith("tiny-default@2.1.0")
    assert main(["models", "install", "tiny-default@1.0.0"]) == 0  # bundled: nothing downloaded, told how to use it
    assert "--model tiny-default@1.0.0" in capsys.readouterr().out
    assert not (tmp_path / "home").exists() or not any((tmp_path / "home").rglob("model.json"))
