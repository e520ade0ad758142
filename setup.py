"""Build hook: the wheel carries the bundled default model (all other settings are in pyproject.toml).

``Resources/models`` lies outside the ``voxmmsd`` package in the source tree (the Slicer
extension ships it beside the module). A wheel copies the catalog and the current default
model package (its top-level files, about 85 MB) into ``voxmmsd/resources/models/``, where
:func:`voxmmsd.models.catalog.resources_dir` finds them. Earlier versions of the default
(``<id>/<version>/`` sub-folders) stay out, to keep the wheel under the 100 MB that package
indexes accept; ``voxmmsd models import FOLDER`` installs one from a source checkout.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
MODELS = HERE / "Resources" / "models"
TARGET = Path("voxmmsd") / "resources" / "models"


def bundled_files() -> list:
    """(source, path inside the build folder) of the catalog and every model's top-level files."""
    out = []
    if not MODELS.is_dir():  # an sdist built without them: the wheel has no bundled model
        return out
    for path in sorted(MODELS.iterdir()):
        if path.is_file() and path.suffix == ".json":
            out.append((path, TARGET / path.name))
        elif path.is_dir() and (path / "model.json").is_file():
            out += [(f, TARGET / path.name / f.name) for f in sorted(path.iterdir()) if f.is_file()]
    return out


class BuildWithModels(build_py):
    def run(self) -> None:
        super().run()
        for source, rel in bundled_files():
            target = Path(self.build_lib) / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)


setup(cmdclass={"build_py": BuildWithModels})
