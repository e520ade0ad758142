"""An installed copy of a model carries its new id and version in its weights too (voxmmsd.nets.weights.restamp_weights,
used by ``voxmmsd cohort install``): every load checks that the weights belong to model.json."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from support.packages import build_tiny_package
from voxmmsd.errors import ModelError
from voxmmsd.models.integrity import sha256_file, weights_identity
from voxmmsd.models.package import MODEL_JSON, WEIGHTS, load_package
from voxmmsd.nets.weights import restamp_weights


def _renamed(folder: Path, model_id: str, version: str) -> None:
    meta = json.loads((folder / MODEL_JSON).read_text())
    meta["id"], meta["version"] = model_id, version
    meta["files"][WEIGHTS] = sha256_file(folder / WEIGHTS)
    (folder / MODEL_JSON).write_text(json.dumps(meta))


def test_a_renamed_copy_loads_only_with_restamped_weights(tmp_path: Path) -> None:
    src = build_tiny_package(tmp_path / "src", model_id="tiny", version="0.1")
    before = load_package(src).load_state_dict()

    plain = tmp_path / "plain"
    shutil.copytree(src, plain)
    _renamed(plain, "tiny-local", "1.0.0")
    with pytest.raises(ModelError, match="does not belong"):  # what cohort install produced before
        load_package(plain)

    stamped = tmp_path / "stamped"
    shutil.copytree(src, stamped)
    restamp_weights(stamped / WEIGHTS, id="tiny-local", version="1.0.0")
    _renamed(stamped, "tiny-local", "1.0.0")
    pkg = load_package(stamped)
    assert (pkg.id, pkg.version) == ("tiny-local", "1.0.0")
    assert weights_identity(stamped / WEIGHTS)["network"] == weights_identity(src / WEIGHTS)["network"]
    after = pkg.load_state_dict()
    assert after.keys() == before.keys() and all((after[k] == before[k]).all() for k in before)
