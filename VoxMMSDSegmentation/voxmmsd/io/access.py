"""The one file-open check: can this path be opened as what it is said to be, before anyone reads it?

Every image (:func:`voxmmsd.io.reader.read_image`), every case folder (:mod:`voxmmsd.io.discovery`) and
every file of a model package (:mod:`voxmmsd.models.package`) goes through :func:`check_openable`, so a
broken symbolic link, a file without read permission, a named pipe, a device or a link loop is refused
with a sentence naming the path and the fix, never a ``PermissionError`` traceback, a hang on a pipe, or
a sequence silently taken as missing.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Union

from voxmmsd.errors import InputError

PathLike = Union[str, "os.PathLike[str]"]


def is_broken_link(path: PathLike) -> bool:
    """A symbolic link whose target does not exist (or cannot be reached: a loop)."""
    p = Path(path)
    try:
        return p.is_symlink() and not p.exists()
    except OSError:  # ELOOP and the like
        return True


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def check_openable(path: PathLike, what: str = "file", folder: bool = False, error: type = InputError) -> Path:
    """``path`` if it can be opened for reading as a regular file (or, with ``folder``, a folder may be given);
    else ``error`` (an :class:`InputError` by default) saying why and what to do."""
    p = Path(path)
    if is_broken_link(p):
        try:
            target = os.readlink(p)
        except OSError:
            target = "?"
        raise error(f"{what} {p} is a symbolic link to {target}, which does not exist (a broken link). Fix the "
                    f"link, or give the file itself.")
    try:
        st = p.stat()
    except FileNotFoundError:
        raise error(f"{what} not found: {p}. Check the path.") from None
    except OSError as exc:
        raise error(f"{what} {p} cannot be opened: {exc.strerror or exc}. Check the path.") from None
    if stat.S_ISDIR(st.st_mode):
        if not folder:
            raise error(f"{what} {p} is a folder, not a file. Give the file itself.")
        if not os.access(p, os.R_OK | os.X_OK):
            raise error(f"The folder {p} ({what}) cannot be read: permission denied. Give yourself read "
                        f"permission (chmod u+rx '{p}') or copy it somewhere you can read it.")
        return p
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{what} {p} is {_kind(st.st_mode)}, not a file that can be read as an image or data. "
                    f"Give the file itself.")
    try:
        fd = os.open(str(p), os.O_RDONLY)
    except PermissionError:
        raise error(f"{what} {p} cannot be read: permission denied. Give yourself read permission "
                    f"(chmod u+r '{p}') or copy the file somewhere you can read it.") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise error(f"{what} {p} is a loop of symbolic links. Fix the link, or give the file itself.") from None
        raise error(f"{what} {p} cannot be opened: {exc.strerror or exc}.") from None
    os.close(fd)
    return p
