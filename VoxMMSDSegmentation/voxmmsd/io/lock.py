"""One owner per folder: a lock file created atomically, naming its holder.

Used for run folders (one trainer per run) and output folders (one writer per result).
The lock is a small JSON file ``FOLDER/.voxmmsd.lock`` created with ``O_CREAT | O_EXCL``;
a lock whose process is gone (same host) is stale and is taken over with a warning, so a
crash or ``kill -9`` never leaves a folder locked for ever.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Dict, Optional, Type

from voxmmsd.errors import VoxMMSDError

log = logging.getLogger(__name__)

LOCK_NAME = ".voxmmsd.lock"


class FolderLockedError(VoxMMSDError):
    """Another live process holds the folder's lock."""


def lock_path(folder: Path) -> Path:
    return Path(folder) / LOCK_NAME


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists on this machine."""
    if pid <= 0:
        return False
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import ctypes

        handle = ctypes.windll.kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        code = ctypes.c_ulong()
        ctypes.windll.kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        ctypes.windll.kernel32.CloseHandle(handle)
        return code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """A process that has exited but not been reaped by its parent still answers ``kill(pid, 0)``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no /proc (macOS) or gone
        return False
    state = stat.rsplit(")", 1)[-1].split()
    return bool(state) and state[0] in ("Z", "X")


def read_lock(folder: Path) -> Optional[Dict[str, Any]]:
    """The holder recorded in ``folder``'s lock file, or None if there is none (or it is unreadable)."""
    try:
        text = lock_path(folder).read_text(encoding="utf-8")
    except OSError:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def holder_is_alive(info: Optional[Dict[str, Any]]) -> bool:
    """Whether the process named by a lock record still runs (a record from another host counts as alive)."""
    if info is None:
        return False
    if info.get("host") not in (None, socket.gethostname()):
        return True
    try:
        pid = int(info.get("pid", -1))
    except (TypeError, ValueError):
        return False
    return pid_alive(pid)


class FolderLock:
    """Exclusive, process-level lock on a folder.

    ``with FolderLock(run_dir, "pre-training run"):`` ... raises :class:`FolderLockedError`
    naming the holder if another live process has it; takes over a stale lock.
    """

    def __init__(self, folder: Path, purpose: str = "folder") -> None:
        self.folder = Path(folder)
        self.purpose = purpose
        self.path = lock_path(self.folder)
        self.held = False

    def _record(self) -> Dict[str, Any]:
        return {"pid": os.getpid(), "host": socket.gethostname(), "purpose": self.purpose,
                "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "command": " ".join(sys.argv)[:500]}

    def _create(self) -> bool:
        try:
            fd = os.open(str(self.path), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno == errno.EEXIST:
                return False
            raise VoxMMSDError(f"Cannot create the lock file {self.path}: {exc.strerror}. "
                               f"Check that you can write in {self.folder}.") from None
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(self._record(), f)
        return True

    def acquire(self) -> "FolderLock":
        if self.held:
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            if self._create():
                self.held = True
                return self
            info = read_lock(self.folder)
            if info is None:  # vanished between our attempt and the read: try again
                continue
            if holder_is_alive(info) and info.get("pid") != os.getpid():
                raise FolderLockedError(
                    f"{self.folder} is in use by another VoxMMSD process (pid {info.get('pid')}, "
                    f"{info.get('purpose', 'unknown')}, since {info.get('started', '?')}). Wait for it to finish or "
                    f"stop it; if no such process runs, delete {self.path}.")
            log.warning("taking over a stale lock on %s (pid %s is gone)", self.folder, info.get("pid"))
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
        raise FolderLockedError(f"Could not lock {self.folder}: another process keeps taking the lock. Try again.")

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        info = read_lock(self.folder)
        if info is not None and info.get("pid") == os.getpid():
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self.release()
