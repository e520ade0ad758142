"""The module's model list goes through the engine's model API (``voxmmsd.models``): bundled
packages in the engine's resources folder, the engine's per-user cache (its ``<id>/<version>``
layout, verified imports), finished fine-tuning runs, the schema-checked catalog; and what
it lists is exactly what ``voxmmsd segment --model`` resolves."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

MODULE_DIR = Path(__file__).resolve().parents[1] / "VoxMMSDSegmentation"
if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))

from voxmmsd.errors import ModelError  # noqa: E402
from VoxMMSDSegmentationLib import models  # noqa: E402

torch = pytest.importorskip("torch")  # to write real (tiny) model packages


def write_package(folder: Path, model_id: str, version: str, tolerates_missing: bool = False) -> Path:
    from voxmmsd.models.package import save_package
    from voxmmsd.nets.unet import UNetConfig, VoxUNet
    from voxmmsd.preprocessing import PreprocessConfig

    cfg = UNetConfig(channels=(4, 8, 16, 32, 64))
    return save_package(folder, VoxUNet(cfg).state_dict(), cfg, PreprocessConfig(), model_id=model_id,
                        version=version, export_onnx=False, tolerates_missing=tolerates_missing,
                        name=f"{model_id} model")


@pytest.fixture
def places(tmp_path, monkeypatch):
    resources = tmp_path / "resources"
    write_package(resources / "voxmmsd-brats-default", "voxmmsd-brats-default", "1.0.0")
    (resources / "catalog.json").write_text(json.dumps({"schema_version": 1, "models": [
        {"id": "voxmmsd-brats-default", "version": "1.0.0", "name": "default", "url": "https://example.org/a.zip",
         "size": 10, "sha256": "0" * 64},
        {"id": "voxmmsd-brats-large", "version": "2.0", "name": "Large", "url": "https://example.org/b.zip",
         "size": 10, "sha256": "1" * 64}]}))
    monkeypatch.setenv("VOXMMSD_RESOURCES", str(resources))
    monkeypatch.delenv("VOXMMSD_CATALOG", raising=False)
    monkeypatch.setenv("VOXMMSD_HOME", str(tmp_path / "home"))
    return tmp_path


def test_list_import_and_runs_through_the_engine_api(places):
    from voxmmsd.models.catalog import resolve_model

    run = places / "run"
    write_package(run / "model", "my-finetuned", "0.1", tolerates_missing=True)
    entries = models.list_models(run_dirs=[run])
    assert [(e.id, e.source) for e in entries] == [("voxmmsd-brats-default", "bundled"), ("my-finetuned", "run"),
                                                   ("voxmmsd-brats-large", "catalog")]
    assert entries[0].name == "voxmmsd-brats-default model" and entries[0].label.endswith("1.0.0 (bundled)")
    assert entries[1].tolerates_missing and entries[1].argument == str(run / "model")
    assert entries[2].argument == "voxmmsd-brats-large@2.0" and entries[2].path is None
    assert models.default_index(entries) == 0
    for entry in entries[:2]:  # what the module lists, the engine resolves
        assert resolve_model(entry.argument).id == entry.id

    src = write_package(places / "downloads" / "other", "other", "0.1")
    imported = models.import_model_folder(src)
    assert imported.path == models.user_models_dir() / "other" / "0.1"  # the engine's cache layout
    assert imported.path == places / "home" / "models" / "other" / "0.1"
    assert ("other", "installed") in [(e.id, e.source) for e in models.list_models()]
    assert resolve_model("other").folder == imported.path  # found by id, as the engine finds it
    with pytest.raises(ModelError, match="already installed"):
        models.import_model_folder(src)
    assert models.import_model_folder(src, replace=True).path == imported.path


def test_bad_packages_are_refused_with_the_engines_messages(places):
    with pytest.raises(ModelError, match="no model.json"):
        models.import_model_folder(places / "resources")
    src = write_package(places / "tampered", "tampered", "1")
    (src / "weights.safetensors").write_bytes(b"not the weights")
    with pytest.raises(ModelError, match="tampered with or damaged"):
        models.import_model_folder(src)
    bad = places / "resources" / "broken"
    bad.mkdir()
    (bad / "model.json").write_text("{}")
    assert "broken" not in [e.id for e in models.list_models()]  # skipped with a warning, list still works


def test_user_home_is_the_engines(places):
    from voxmmsd.models.cache import cache_root

    assert models.user_home() == cache_root() == places / "home"
