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
from typing import Any, Dict, List, Optional, Type

from voxmmsd.errors import VoxMMSDError
from voxmmsd.interrupts import critical

log = logging.getLogger(__name__)

LOCK_NAME = ".voxmmsd.lock"


class FolderLockedError(VoxMMSDError):
    """Another live process holds the folder's lock."""


def lock_path(folder: Path) -> Path:
    return Path(folder) / LOCK_NAME


def process_start_time(pid: int) -> Optional[str]:
    """An id of the process's start (Linux: clock ticks since boot), to tell a reused pid apart; None elsewhere."""
    fields = _proc_stat(pid)
    return fields[19] if fields else None


def _proc_stat(pid: int) -> Optional[List[str]]:
    """The fields of ``/proc/PID/stat`` after the command name, or None (no /proc, or no such process)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()


def pid_alive(pid: int, start_time: Optional[str] = None) -> bool:
    """Whether a process with this pid runs on this machine (and, given ``start_time``, is still the same one).

    A process that has exited but not been reaped by its parent (a zombie) counts as gone.
    """
    if pid <= 0:
        return False
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        return _windows_alive(pid)
    if Path("/proc/self/stat").exists():
        fields = _proc_stat(pid)
        if not fields or fields[0] in ("Z", "X"):
            return False
        return start_time is None or fields[19] == start_time
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _windows_alive(pid: int) -> bool:  # pragma: no cover - Windows only
    import ctypes

    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return False
    code = ctypes.c_ulong()
    ok = kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
    kernel32.CloseHandle(handle)
    return bool(ok) and code.value == 259  # STILL_ACTIVE


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
        self._mine = False

    def _record(self) -> Dict[str, Any]:
        return {"pid": os.getpid(), "host": socket.gethostname(), "purpose": self.purpose,
                "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "command": " ".join(sys.argv)[:500]}

    def _create(self) -> bool:
        with critical():  # a SIGTERM waits until the file is known to be ours (then the unwinding removes it)
            try:
                fd = os.open(str(self.path), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            except OSError as exc:
                if exc.errno == errno.EEXIST:
                    return False
                raise VoxMMSDError(f"Cannot create the lock file {self.path}: {exc.strerror}. "
                                   f"Check that you can write in {self.folder}.") from None
            self._mine = True  # from here on the file is ours: an interrupt (Ctrl-C, SIGTERM) must not leave it behind
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump(self._record(), f)
            except BaseException:
                self._drop()
                raise
        return True

    def _drop(self) -> None:
        self._mine = False
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

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
        if info is None or info.get("pid") == os.getpid():  # ours (None: ours, its record cut short)
            self._drop()

    def __enter__(self) -> "FolderLock":
        try:
            return self.acquire()
        except BaseException:  # interrupted between creating the file and holding it: the file goes too
            if self._mine and not self.held:
                self._drop()
            raise

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self.release()
