"""The model catalog (``Resources/models/catalog.json``), installing from it, and finding a model by id.

A catalog entry names a zip or tar.gz archive of one model package with its size and
SHA-256. ``resolve_model`` finds a model given as a package folder, or by id (``ID`` or
``ID@VERSION``) among the bundled models (``Resources/models/<id>/``) and the per-user cache.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from voxmmsd.errors import ModelError
from voxmmsd.models import cache
from voxmmsd.models.download import ProgressFn, download
from voxmmsd.models.package import MODEL_JSON, ModelPackage, load_package, safe_name

log = logging.getLogger(__name__)

DEFAULT_MODEL = "voxmmsd-brats-default"
CATALOG_SCHEMA = Path(__file__).with_name("catalog.schema.json")


def resources_dir() -> Path:
    """Where the bundled models are: ``$VOXMMSD_RESOURCES``; else ``voxmmsd/resources/models`` inside an
    installed wheel (``setup.py`` copies them there); else ``Resources/models`` next to the installed Slicer
    module; else the source tree's top-level ``Resources/models``. The first that holds ``catalog.json``."""
    env = os.environ.get("VOXMMSD_RESOURCES")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    candidates = [here.parents[1] / "resources" / "models", here.parents[2] / "Resources" / "models",
                  here.parents[3] / "Resources" / "models"]
    for folder in candidates:
        if (folder / "catalog.json").is_file():
            return folder
    return candidates[-1]


def catalog_path() -> Path:
    return Path(os.environ.get("VOXMMSD_CATALOG", str(resources_dir() / "catalog.json")))


@dataclass(frozen=True)
class CatalogEntry:
    id: str
    version: str
    name: str
    url: str
    size: int
    sha256: str
    description: str = ""
    license: str = ""

    @classmethod
    def from_dict(cls, d: Dict[str, Any], where: Any = None) -> "CatalogEntry":
        safe_name(d["id"], "id", where)
        safe_name(d["version"], "version", where)
        return cls(d["id"], d["version"], d["name"], d["url"], int(d["size"]), d["sha256"].lower(),
                   d.get("description", ""), d.get("license", ""))


def load_catalog(path: Optional[Path] = None) -> List[CatalogEntry]:
    """The entries of the catalog at ``path`` (default :func:`catalog_path`), schema-checked."""
    import jsonschema

    path = Path(path) if path else catalog_path()
    if not path.is_file():
        return []
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        with open(CATALOG_SCHEMA, encoding="utf-8") as f:
            jsonschema.validate(data, json.load(f))
    except ValueError as exc:  # JSONDecodeError and jsonschema.ValidationError are ValueErrors
        msg = getattr(exc, "message", str(exc))
        raise ModelError(f"Model catalog {path} is invalid: {msg}. Fix or restore the file.") from None
    return [CatalogEntry.from_dict(d, path) for d in data["models"]]


def split_spec(spec: str) -> Tuple[str, Optional[str]]:
    """``id@version`` -> (id, version); ``id`` -> (id, None)."""
    if "@" in spec:
        mid, ver = spec.split("@", 1)
        return mid, ver or None
    return spec, None


def find_entry(spec: str, entries: Optional[List[CatalogEntry]] = None) -> CatalogEntry:
    mid, ver = split_spec(spec)
    entries = load_catalog() if entries is None else entries
    cands = [e for e in entries if e.id == mid and (ver is None or e.version == ver)]
    if not cands:
        known = ", ".join(sorted({e.id for e in entries})) or "none"
        raise ModelError(f"Model {spec!r} is not in the catalog {catalog_path()} (known: {known}). "
                         f"Import a package folder with 'voxmmsd models import FOLDER'.")
    return cands[-1]


def bundled(model_id: str, version: Optional[str] = None) -> Optional[Path]:
    """A package shipped in ``Resources/models/<id>/`` (itself a package, or one sub-folder per version)."""
    safe_name(model_id, "id")
    if version is not None:
        safe_name(version, "version")
    base = resources_dir() / model_id
    if (base / MODEL_JSON).is_file():
        if version is None or json.loads((base / MODEL_JSON).read_text(encoding="utf-8")).get("version") == version:
            return base
        # other versions of the default may sit beside it, one sub-folder each (e.g. <id>/1.0.0/)
        return base / version if (base / version / MODEL_JSON).is_file() else None
    if version is not None:
        return base / version if (base / version / MODEL_JSON).is_file() else None
    if base.is_dir():
        versions = sorted((p for p in base.iterdir() if (p / MODEL_JSON).is_file()),
                          key=lambda p: cache._version_key(p.name))
        return versions[-1] if versions else None
    return None


def bundled_versions(model_id: str) -> List[Tuple[str, Path, bool]]:
    """``(version, folder, is_default)`` of every bundled version of ``model_id``, oldest first.

    The default is the package at ``Resources/models/<id>/`` itself (what ``--model <id>``
    gives); the others sit in one sub-folder each and are chosen with ``<id>@<version>``.
    """
    default = bundled(model_id)  # checks the id
    base = resources_dir() / model_id
    found: List[Tuple[str, Path]] = []
    if (base / MODEL_JSON).is_file():
        found.append((str(json.loads((base / MODEL_JSON).read_text(encoding="utf-8")).get("version")), base))
    if base.is_dir():
        found += [(sub.name, sub) for sub in base.iterdir() if (sub / MODEL_JSON).is_file()]
    return sorted(((v, p, p == default) for v, p in found), key=lambda t: cache._version_key(t[0]))


def resolve_model(spec: Optional[str] = None) -> ModelPackage:
    """A verified package from a folder path, or from an id (bundled first, then the user cache)."""
    spec = spec or DEFAULT_MODEL
    as_path = Path(spec).expanduser()
    if as_path.is_dir() or os.sep in spec or spec.startswith("."):
        return load_package(as_path)
    mid, ver = split_spec(spec)
    folder = bundled(mid, ver) or cache.find_installed(mid, ver)
    if folder is not None:
        return load_package(folder)
    hint = ""
    try:
        if any(e.id == mid for e in load_catalog()):
            hint = f" Install it with 'voxmmsd models install {spec}'."
    except ModelError:
        pass
    have = ", ".join(sorted({i for i, _, _ in cache.installed()})) or "none"
    raise ModelError(f"Unknown model {spec!r}: not bundled in {resources_dir()} and not installed in "
                     f"{cache.models_dir()} (installed: {have}).{hint or ' See voxmmsd models list.'}")


def _safe_extract(archive: Path, into: Path) -> None:
    """Extract a zip or tar archive as data only: regular files and folders, each inside ``into``, written here
    with modes set here (files 0644, folders 0755; an archive's own modes such as 4777 are never applied).
    A member outside ``into`` (``..``, an absolute path), a link, a device or a pipe refuses the archive.
    (Python's ``tarfile`` data filter does the same, but not on every Python 3.9 a Slicer ships.)"""
    root = into.resolve()

    def target(name: str) -> Path:
        path = (into / name).resolve()
        if root != path and root not in path.parents:
            raise ModelError(f"Archive {archive} holds an unsafe path {name!r}; refused.")
        return path

    def write(path: Path, src: Any) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            dst = open(path, "xb")
        except (FileExistsError, IsADirectoryError):
            raise ModelError(f"Archive {archive} holds {path.relative_to(root)} twice; refused.") from None
        with dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        os.chmod(path, 0o644)

    into.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            infos = z.infolist()
            for info in infos:
                target(info.filename)
                mode = (info.external_attr >> 16) & 0o170000
                if mode and mode not in (0o100000, 0o040000):  # a zip may carry a Unix symlink or device
                    raise ModelError(f"Archive {archive} holds a link or special file {info.filename!r}; refused.")
            for info in infos:
                if info.is_dir():
                    target(info.filename).mkdir(parents=True, exist_ok=True)
                else:
                    with z.open(info) as src:
                        write(target(info.filename), src)
    else:
        try:
            with tarfile.open(archive) as t:
                members = t.getmembers()
                for m in members:
                    target(m.name)
                    if not (m.isfile() or m.isdir()):
                        raise ModelError(f"Archive {archive} holds a link, device or pipe {m.name!r}; refused.")
                for m in members:
                    if m.isdir():
                        target(m.name).mkdir(parents=True, exist_ok=True)
                        continue
                    data = t.extractfile(m)
                    if data is None:  # pragma: no cover - a regular member always has data
                        raise ModelError(f"Archive {archive}: cannot read {m.name!r}; refused.")
                    with data:
                        write(target(m.name), data)
        except tarfile.TarError as exc:
            raise ModelError(f"{archive} is not a zip or tar archive ({exc}).") from None
    for folder in [p for p in into.rglob("*") if p.is_dir()] + [into]:
        os.chmod(folder, 0o755)


def _package_folder(root: Path) -> Path:
    found = [p.parent for p in root.rglob(MODEL_JSON)]
    if len(found) != 1:
        raise ModelError(f"The downloaded archive holds {len(found)} model packages; expected exactly one.")
    return found[0]


def install(spec: str, progress: Optional[ProgressFn] = None,
            entries: Optional[List[CatalogEntry]] = None, replace: bool = False) -> ModelPackage:
    """Download (resuming), verify and install a catalog model into the user cache.

    An installed id@version is kept (:class:`ModelError`, before any download) unless ``replace``.
    A refused archive (unsafe member, wrong id, damaged package) is deleted, not kept.
    """
    entry = find_entry(spec, entries)
    safe_name(entry.id, "id", catalog_path())
    safe_name(entry.version, "version", catalog_path())
    if not replace and cache.find_installed(entry.id, entry.version) is not None:
        raise ModelError(f"{entry.id}@{entry.version} is already installed in "
                         f"{cache.find_installed(entry.id, entry.version)}; nothing was changed. Give --replace "
                         f"to download and replace it.")
    name = f"{entry.id}-{entry.version}" + (".zip" if entry.url.endswith(".zip") else ".tar.gz")
    archive = download(entry.url, cache.downloads_dir() / name, entry.sha256, entry.size, progress)
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=str(cache.downloads_dir())))
    try:
        _safe_extract(archive, tmp)
        folder = _package_folder(tmp)
        pkg = load_package(folder)
        if (pkg.id, pkg.version) != (entry.id, entry.version):
            raise ModelError(f"The archive for {entry.id} {entry.version} holds {pkg.summary()}; refused.")
        installed_pkg = cache.add_package(folder, replace=replace)
    except ModelError:
        archive.unlink()  # refused: do not keep it around
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    archive.unlink()
    return installed_pkg
