"""The per-user model cache: ``$VOXMMSD_HOME`` or the platform's user data folder.

Layout: ``<root>/models/<id>/<version>/`` holds one model package;
``<root>/downloads/`` holds (partial) downloads.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, List, Mapping, Optional, Tuple

from voxmmsd.errors import ModelError
from voxmmsd.io.access import check_openable
from voxmmsd.io.atomic import ensure_writable_dir
from voxmmsd.models.package import MODEL_JSON, ModelPackage, load_package, read_model_json, replace_folder, safe_name

log = logging.getLogger(__name__)


def cache_root() -> Path:
    """``$VOXMMSD_HOME``; else ``%LOCALAPPDATA%\\voxmmsd``, ``~/Library/Application Support/voxmmsd``
    or ``$XDG_DATA_HOME/voxmmsd`` (default ``~/.local/share/voxmmsd``)."""
    env = os.environ.get("VOXMMSD_HOME")
    if env:
        return Path(env).expanduser()
    home = Path.home()
    if sys.platform.startswith("win"):
        return Path(os.environ.get("LOCALAPPDATA", home / "AppData" / "Local")) / "voxmmsd"
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / "voxmmsd"
    return Path(os.environ.get("XDG_DATA_HOME", home / ".local" / "share")) / "voxmmsd"


def models_dir() -> Path:
    return cache_root() / "models"


def downloads_dir() -> Path:
    return cache_root() / "downloads"


def _version_key(v: str) -> Tuple:
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in v.replace("-", ".").split("."))


def installed() -> List[Tuple[str, str, Path]]:
    """(id, version, folder) of every cached package (not verified)."""
    root = models_dir()
    out = []
    if root.is_dir():
        for mid in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for ver in sorted((p for p in mid.iterdir() if (p / MODEL_JSON).is_file()),
                              key=lambda p: _version_key(p.name)):
                out.append((mid.name, ver.name, ver))
    return out


def find_installed(model_id: str, version: Optional[str] = None) -> Optional[Path]:
    """The cached folder of ``model_id`` (newest version unless ``version``), or None."""
    safe_name(model_id, "id")
    if version is not None:
        safe_name(version, "version")
    cands = [(v, p) for i, v, p in installed() if i == model_id and (version is None or v == version)]
    return cands[-1][1] if cands else None


def add_package(folder: Path, replace: bool = False) -> ModelPackage:
    """Copy a verified package folder into the cache: ``model.json`` and the files it lists, as plain files
    (:func:`copy_package_files`; links are refused, nothing else is copied).

    An installed package with the same id and version is kept (:class:`ModelError`) unless
    ``replace``; with ``replace`` it is swapped only once the new copy is complete and verified.
    """
    pkg = load_package(folder)
    target = models_dir() / safe_name(pkg.id, "id") / safe_name(pkg.version, "version")
    if target.exists() and not replace:
        raise ModelError(f"{pkg.id}@{pkg.version} is already installed in {target}; nothing was changed. Give "
                         f"--replace to replace it, or give the new package another version.")
    ensure_writable_dir(target.parent)
    clean_leftovers(target.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{pkg.version}.", suffix=".tmp", dir=str(target.parent)))
    try:
        copy_package_files(Path(folder), pkg.meta, tmp)
        load_package(tmp)  # verify the copy
        replace_folder(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("model %s installed in %s", pkg.summary(), target)
    return load_package(target, verify=False)


def package_files(folder: Path, meta: Mapping[str, Any]) -> List[Path]:
    """The files a package is made of (``model.json`` and those it lists), each a plain file in ``folder``
    itself: a symbolic link, a pipe, a device or a file in a sub-folder is refused (:class:`ModelError`)."""
    out = []
    for name in [MODEL_JSON, *meta["files"]]:
        path = Path(folder) / name
        if Path(name).name != name:
            raise ModelError(f"{folder / MODEL_JSON} lists {name!r}: a package's files sit in its folder. Refused.")
        if path.is_symlink():
            raise ModelError(f"{path} is a symbolic link (to {os.readlink(path)}): a package to import holds plain "
                             f"files only, so that importing never copies something from elsewhere. Copy the file "
                             f"itself into the package.")
        check_openable(path, f"model file {name} of {folder}", error=ModelError)
        out.append(path)
    return out


def copy_package_files(folder: Path, meta: Mapping[str, Any], into: Path) -> None:
    """Copy the :func:`package_files` of ``folder`` into the new folder ``into`` with modes set here (files
    0644, the folder 0755); anything else in ``folder`` (notes, links, pipes, sub-folders) is left out."""
    files = package_files(folder, meta)
    skipped = sorted(p.name for p in Path(folder).iterdir() if p not in files)
    if skipped:
        log.info("import %s: left out what model.json does not list: %s", folder, ", ".join(skipped))
    os.chmod(into, 0o755)
    for path in files:
        with open(path, "rb") as src, open(into / path.name, "xb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        os.chmod(into / path.name, 0o644)


def clean_leftovers(folder: Path, min_age_s: float = 3600.0) -> None:
    """Remove hidden temporary copies (``.<version>.*.tmp``, ``.<name>.old-*``) an interrupted import left
    (older than ``min_age_s``, so that a concurrent import keeps its own)."""
    if not folder.is_dir():
        return
    now = time.time()
    for p in folder.iterdir():
        if not (p.name.startswith(".") and p.is_dir() and (p.name.endswith(".tmp") or ".old-" in p.name)):
            continue
        if now - p.stat().st_mtime >= min_age_s:
            shutil.rmtree(p, ignore_errors=True)
            log.info("removed leftover %s", p)


def remove(model_id: str, version: Optional[str] = None) -> List[Path]:
    """Delete cached versions of ``model_id`` (all, or one); return what was removed."""
    safe_name(model_id, "id")
    if version is not None:
        safe_name(version, "version")
    gone = [p for i, v, p in installed() if i == model_id and (version is None or v == version)]
    if not gone:
        raise ModelError(f"Model {model_id}{' ' + version if version else ''} is not installed "
                         f"(see 'voxmmsd models list').")
    for p in gone:
        shutil.rmtree(p)
    parent = models_dir() / model_id
    if parent.is_dir() and not any(parent.iterdir()):
        parent.rmdir()
    return gone


def describe(folder: Path) -> str:
    meta = read_model_json(folder)
    return f"{meta['id']} {meta['version']}"
