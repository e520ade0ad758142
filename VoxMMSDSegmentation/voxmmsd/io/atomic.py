"""Write files atomically: to a temporary name in the same folder, then rename.

A crash or an error while writing leaves either the old file or none, never half a file.
A full disk (ENOSPC) while writing becomes a :class:`~voxmmsd.errors.VoxMMSDError` saying so
(the old file is kept), not a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from voxmmsd.errors import InputError, VoxMMSDError


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for ext in (".seg.nrrd", ".nii.gz", ".tar.gz"):
        if name.endswith(ext):
            return ext
    return path.suffix


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def ensure_writable_dir(folder: Path) -> Path:
    """Create ``folder`` if needed; raise :class:`InputError` if it cannot be written."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"Cannot create output folder {folder}: {exc.strerror}. Choose another folder.") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"No permission to write in {folder}. Choose a folder you can write to.")
    return folder


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` (same extension); rename it over ``path`` on success."""
    path = Path(path)
    ensure_writable_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".", suffix=".tmp" + _suffix(path), dir=str(path.parent))
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
        os.replace(tmp_path, path)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise VoxMMSDError(f"The disk is full: no space left while writing {path}; "
                               f"{'the previous file is kept' if path.exists() else 'nothing was written'}. "
                               f"Free some space and run again.") from None
        raise
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
