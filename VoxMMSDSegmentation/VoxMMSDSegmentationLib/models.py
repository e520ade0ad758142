"""The models the module offers: bundled, installed (per-user), finished fine-tuning runs, catalog.

A model package is a folder with ``model.json`` (see the engine's model-package contract).
Listing reads only ``model.json`` files; full validation (schema, checksums) is the
engine's job when it loads the package.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

from voxmmsd.errors import ModelError

log = logging.getLogger(__name__)

DEFAULT_MODEL_ID = "voxmmsd-brats-default"
MODULE_DIR = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ModelEntry:
    """One choice of the model selector."""

    id: str
    version: str
    name: str
    source: str  # bundled / installed / run / catalog
    path: Optional[Path] = None  # None for catalog entries not downloaded yet
    sequences: tuple = ("t1n", "t1c", "t2w", "t2f")
    tolerates_missing: bool = False

    @property
    def label(self) -> str:
        where = {"bundled": "bundled", "installed": "installed", "run": "training run",
                 "catalog": "download"}.get(self.source, self.source)
        return f"{self.name} {self.version} ({where})"

    @property
    def argument(self) -> str:
        """What ``voxmmsd segment --model`` gets: the folder if local, else the id."""
        return str(self.path) if self.path is not None else self.id


def user_home() -> Path:
    """The engine's per-user folder (``$VOXMMSD_HOME``, else the platform's user data folder)."""
    try:
        from voxmmsd.models.cache import cache_root

        return Path(cache_root())
    except ImportError:  # engine dependencies not installed yet
        home = os.environ.get("VOXMMSD_HOME")
        return Path(home) if home else Path.home() / ".voxmmsd"


def user_models_dir() -> Path:
    """The per-user model cache (the engine's, when it defines one)."""
    try:
        from voxmmsd.models import cache  # type: ignore[attr-defined]

        folder = getattr(cache, "models_dir", None) or getattr(cache, "cache_dir", None)
        if callable(folder):
            return Path(folder())
    except ImportError:
        pass
    return user_home() / "models"


def bundled_models_dirs() -> List[Path]:
    """``Resources/models`` of the module (installed extension) and of the source tree."""
    return [MODULE_DIR / "Resources" / "models", MODULE_DIR.parent / "Resources" / "models"]


def read_model_json(folder: Path) -> Dict[str, Any]:
    path = Path(folder) / "model.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError:
        raise ModelError(f"{folder} is not a model package (no model.json). Choose the folder that holds "
                         f"model.json, weights.safetensors and model.onnx.") from None
    except ValueError as exc:
        raise ModelError(f"{path} is not valid JSON ({exc}). Export the model again.") from None
    for key in ("id", "version", "labels", "sequences"):
        if key not in data:
            raise ModelError(f"{path} lacks '{key}'. It is not a VoxMMSD model package; export it again.")
    return data


def entry_from_folder(folder: Path, source: str) -> ModelEntry:
    data = read_model_json(folder)
    return ModelEntry(str(data["id"]), str(data["version"]), str(data.get("name") or data["id"]), source,
                      Path(folder), tuple(data.get("sequences", ())), bool(data.get("tolerates_missing", False)))


def scan(folder: Path, source: str) -> List[ModelEntry]:
    """Model packages directly in ``folder`` or one level below it."""
    out: List[ModelEntry] = []
    folder = Path(folder)
    if not folder.is_dir():
        return out
    candidates = [folder] + sorted(p for p in folder.iterdir() if p.is_dir())
    for candidate in candidates:
        if (candidate / "model.json").is_file():
            try:
                out.append(entry_from_folder(candidate, source))
            except ModelError as exc:
                log.warning("skipping %s: %s", candidate, exc)
    return out


def catalog_entries(folders: Iterable[Path]) -> List[ModelEntry]:
    """Entries of ``catalog.json`` files (``{"models": [{id, version, name, ...}]}``)."""
    out: List[ModelEntry] = []
    for folder in folders:
        path = Path(folder) / "catalog.json"
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("unreadable model catalog %s: %s", path, exc)
            continue
        items = data.get("models", []) if isinstance(data, dict) else data
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and "id" in item:
                out.append(ModelEntry(str(item["id"]), str(item.get("version", "")),
                                      str(item.get("name") or item["id"]), "catalog", None,
                                      tuple(item.get("sequences", ("t1n", "t1c", "t2w", "t2f"))),
                                      bool(item.get("tolerates_missing", False))))
    return out


def list_models(run_dirs: Iterable[Path] = (), extra_dirs: Iterable[Path] = ()) -> List[ModelEntry]:
    """All models, local ones first; a catalog entry is dropped when that id+version is local."""
    local: List[ModelEntry] = []
    for folder in list(extra_dirs) + bundled_models_dirs():
        local += scan(folder, "bundled")
    local += scan(user_models_dir(), "installed")
    for run in run_dirs:
        model = Path(run) / "model"
        if (model / "model.json").is_file():
            local += scan(model, "run")
    seen = set()
    out: List[ModelEntry] = []
    for entry in local:
        key = (entry.id, entry.version, str(entry.path))
        if key not in seen:
            seen.add(key)
            out.append(entry)
    have = {(e.id, e.version) for e in out}
    for entry in catalog_entries(bundled_models_dirs()):
        if (entry.id, entry.version) not in have:
            out.append(entry)
    return out


def default_index(entries: List[ModelEntry]) -> int:
    """Index of the default model (its newest local copy), else 0."""
    for i, entry in enumerate(entries):
        if entry.id == DEFAULT_MODEL_ID and entry.path is not None:
            return i
    for i, entry in enumerate(entries):
        if entry.id == DEFAULT_MODEL_ID:
            return i
    return 0


def import_model_folder(folder: Path, destination: Optional[Path] = None) -> ModelEntry:
    """Copy a model package into the per-user models folder (``<id>-<version>``) and list it."""
    entry = entry_from_folder(Path(folder), "installed")
    target_root = Path(destination) if destination else user_models_dir()
    target = target_root / f"{entry.id}-{entry.version}"
    if target.resolve() == Path(folder).resolve():
        return entry
    tmp = target_root / f".{target.name}.importing"
    if tmp.exists():
        shutil.rmtree(tmp)
    target_root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(str(folder), str(tmp))
    if target.exists():
        shutil.rmtree(target)
    os.replace(str(tmp), str(target))
    return entry_from_folder(target, "installed")
