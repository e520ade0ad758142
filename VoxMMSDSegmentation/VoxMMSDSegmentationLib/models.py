"""The models the module offers: bundled, installed (per-user cache), finished fine-tuning runs, catalog.

Everything goes through the engine's own model API (``voxmmsd.models``): where the
bundled models and the catalog live (``catalog.resources_dir``, ``catalog.load_catalog``),
the per-user cache and its layout (``cache.installed``, ``cache.add_package``), and the
schema-checked ``model.json`` reader (``package.read_model_json``). Nothing here reads
those files itself or guesses at engine functions, so the module lists exactly what
``voxmmsd segment --model`` can resolve.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, List, Mapping, Optional, Tuple

from voxmmsd.sequences import SEQUENCES as ALL_SEQUENCES  # the engine's vocabulary (plain Python)

log = logging.getLogger(__name__)

DEFAULT_MODEL_ID = "voxmmsd-brats-default"


@dataclass(frozen=True)
class ModelEntry:
    """One choice of the model selector."""

    id: str
    version: str
    name: str
    source: str  # bundled / installed / run / catalog / default
    path: Optional[Path] = None  # None: given to the engine by id (catalog entry, or not listed yet)
    sequences: Tuple[str, ...] = ALL_SEQUENCES
    tolerates_missing: bool = False
    #: where a model fine-tuned on a local cohort came from (cohort size, date, held-out scores); "" otherwise
    provenance: str = ""

    @property
    def label(self) -> str:
        where = {"bundled": "bundled", "installed": "installed", "run": "training run", "catalog": "download",
                 "default": "the engine's default"}.get(self.source, self.source)
        version = f" {self.version}" if self.version else ""
        return f"{self.name}{version} ({where}{'; ' + self.provenance if self.provenance else ''})"

    @property
    def argument(self) -> str:
        """What ``voxmmsd segment --model`` gets: the folder if local, else ``id@version`` (or the id)."""
        if self.path is not None:
            return str(self.path)
        return f"{self.id}@{self.version}" if self.version and self.source == "catalog" else self.id


def user_home() -> Path:
    """The engine's per-user folder (``$VOXMMSD_HOME``, else the platform's user data folder)."""
    from voxmmsd.models.cache import cache_root

    return Path(cache_root())


def user_models_dir() -> Path:
    """The engine's per-user model cache (``<home>/models/<id>/<version>/``)."""
    from voxmmsd.models.cache import models_dir

    return Path(models_dir())


def entry_from_meta(meta: Mapping[str, Any], folder: Optional[Path], source: str) -> ModelEntry:
    from voxmmsd.cohort.install import describe

    return ModelEntry(str(meta["id"]), str(meta["version"]), str(meta.get("name") or meta["id"]), source,
                      folder, tuple(meta.get("sequences") or ALL_SEQUENCES), bool(meta.get("tolerates_missing")),
                      describe(meta))


def entry_from_folder(folder: Path, source: str) -> ModelEntry:
    """The entry of a package folder, through the engine's schema-checked reader (raises ModelError)."""
    from voxmmsd.models.package import read_model_json

    return entry_from_meta(read_model_json(Path(folder)), Path(folder), source)


def bundled_folders() -> List[Path]:
    """Package folders shipped with the module: ``<resources>/<id>/`` or ``<resources>/<id>/<version>/``."""
    from voxmmsd.models.catalog import resources_dir
    from voxmmsd.models.package import MODEL_JSON

    root = Path(resources_dir())
    out: List[Path] = []
    if not root.is_dir():
        return out
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if (folder / MODEL_JSON).is_file():
            out.append(folder)  # the default version; other versions may sit beside it (<id>/<version>/)
        out += sorted(p for p in folder.iterdir() if p.is_dir() and (p / MODEL_JSON).is_file())
    return out


def _entries(folders: Iterable[Path], source: str) -> List[ModelEntry]:
    from voxmmsd.errors import ModelError

    out = []
    for folder in folders:
        try:
            out.append(entry_from_folder(folder, source))
        except ModelError as exc:
            log.warning("skipping model %s: %s", folder, exc)
    return out


def list_models(run_dirs: Iterable[Path] = ()) -> List[ModelEntry]:
    """All models, local ones first; a catalog entry is dropped when that id+version is local.

    Before the engine's packages are installed (``jsonschema``, needed to check a
    ``model.json``), only the engine's default model is offered, by id."""
    from voxmmsd.errors import ModelError
    from voxmmsd.models import cache, catalog

    try:
        local = _entries(bundled_folders(), "bundled")
        local += _entries([folder for _, _, folder in cache.installed()], "installed")
        local += _entries([Path(r) / "model" for r in run_dirs if (Path(r) / "model" / "model.json").is_file()],
                          "run")
    except ImportError as exc:
        log.info("model list limited until the dependencies are installed (%s)", exc)
        return [ModelEntry(catalog.DEFAULT_MODEL, "", "VoxMMSD BraTS default model", "default")]
    seen = set()
    out: List[ModelEntry] = []
    for entry in local:
        key = (entry.id, entry.version, str(entry.path))
        if key not in seen:
            seen.add(key)
            out.append(entry)
    have = {(e.id, e.version) for e in out}
    try:
        remote = catalog.load_catalog()
    except ModelError as exc:
        log.warning("%s", exc)
        remote = []
    for item in remote:
        if (item.id, item.version) not in have:
            out.append(ModelEntry(item.id, item.version, item.name, "catalog"))
    return out


def default_index(entries: List[ModelEntry]) -> int:
    """Index of the default model (its first local copy), else 0."""
    from voxmmsd.models.catalog import DEFAULT_MODEL

    for local_only in (True, False):
        for i, entry in enumerate(entries):
            if entry.id == DEFAULT_MODEL and (entry.path is not None or not local_only):
                return i
    return 0


def import_model_folder(folder: Path, replace: bool = False) -> ModelEntry:
    """Install a package folder into the engine's per-user cache (verified copy, checksums checked);
    ModelError with the engine's message if it is invalid or that id+version is installed."""
    from voxmmsd.models.cache import add_package

    package = add_package(Path(folder), replace=replace)
    return entry_from_meta(package.meta, package.folder, "installed")
