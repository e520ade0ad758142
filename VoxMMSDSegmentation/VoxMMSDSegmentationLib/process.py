"""Run the engine as a separate process and follow its output without blocking the GUI.

A reader thread puts every output line into a queue; the GUI drains it from a timer
(:meth:`EngineProcess.poll`). :meth:`EngineProcess.cancel` kills the whole process
tree (the group the process was started as the head of, plus every descendant).
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any, Dict, List, Mapping, Optional, Sequence, Tuple

from voxmmsd.io.lock import pid_alive as pid_alive  # one liveness test for the engine and Slicer
from voxmmsd.io.lock import process_start_time as process_start_time

log = logging.getLogger(__name__)

WINDOWS = sys.platform.startswith("win")
#: folder holding the engine package ``voxmmsd`` (bundled next to the module)
ENGINE_DIR = Path(__file__).resolve().parent.parent


def engine_command(args: Sequence[str], python: Optional[str] = None) -> List[str]:
    """``[python, -m, voxmmsd, *args]``; ``python`` defaults to this interpreter.

    Inside Slicer pass the ``PythonSlicer`` executable (see :func:`slicer_python`).
    """
    return [python or sys.executable, "-m", "voxmmsd"] + [str(a) for a in args]


def slicer_python(slicer_home: Optional[str]) -> Optional[str]:
    """The ``PythonSlicer`` executable of a Slicer installation, or None if not found."""
    if not slicer_home:
        return None
    for rel in ("bin/PythonSlicer", "bin/PythonSlicer.exe", "bin/python-real", "bin/python-real.exe"):
        candidate = Path(slicer_home) / rel
        if candidate.is_file():
            return str(candidate)
    return None


def engine_environment(base: Optional[Mapping[str, str]] = None, device: str = "auto") -> Dict[str, str]:
    """Environment for an engine process: the bundled engine importable, unbuffered output.

    ``device="cpu"`` hides the GPUs (``CUDA_VISIBLE_DEVICES=-1``) so nothing touches CUDA.
    """
    env = dict(os.environ if base is None else base)
    paths = [str(ENGINE_DIR)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = "-1"
    return env


#: Windows process creation flags (``subprocess`` constants, spelled out for other platforms' tests)
CREATE_NEW_PROCESS_GROUP = 0x00000200
CREATE_NO_WINDOW = 0x08000000


def popen_group_kwargs(windows: bool = WINDOWS) -> Dict[str, Any]:
    """``Popen`` arguments that start the child as the head of its own process group.

    POSIX: a new session (``pgid == pid``), so that the launcher (``PythonSlicer``) and the
    interpreter it starts can be killed together. Windows: a new process group and no
    console window (``CREATE_NO_WINDOW``: the engine's console would otherwise pop up).
    ``DETACHED_PROCESS`` is not used: it gives the child no console at all.
    """
    if windows:
        return {"creationflags": CREATE_NEW_PROCESS_GROUP | CREATE_NO_WINDOW}
    return {"start_new_session": True}


class EngineProcess:
    """One engine run whose stdout+stderr lines arrive in a queue.

    Queue items are ``("line", text)`` and finally ``("exit", returncode)``.
    """

    def __init__(self, command: Sequence[str], env: Optional[Mapping[str, str]] = None,
                 cwd: Optional[Path] = None) -> None:
        self.command = [str(c) for c in command]
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.proc: Optional[subprocess.Popen] = None
        self.lines: "queue.Queue[Tuple[str, object]]" = queue.Queue()
        self.cancelled = False
        self._reader: Optional[threading.Thread] = None

    def start(self) -> "EngineProcess":
        log.info("starting engine: %s", " ".join(self.command))
        self.proc = subprocess.Popen(
            self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=self.env, cwd=str(self.cwd) if self.cwd else None, text=True, encoding="utf-8",
            errors="replace", bufsize=1, **popen_group_kwargs(),  # type: ignore[arg-type]
        )
        self._reader = threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True,
                                        name="voxmmsd-engine-reader")
        self._reader.start()
        return self

    def _read(self, stream: IO[str]) -> None:
        assert self.proc is not None
        try:
            for line in stream:
                self.lines.put(("line", line.rstrip("\r\n")))
        except (OSError, ValueError):  # stream closed by a kill
            pass
        finally:
            self.lines.put(("exit", self.proc.wait()))

    @property
    def pid(self) -> Optional[int]:
        return self.proc.pid if self.proc else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def poll(self, max_items: int = 1000) -> List[Tuple[str, object]]:
        """Everything that arrived since the last call (never blocks)."""
        items: List[Tuple[str, object]] = []
        while len(items) < max_items:
            try:
                items.append(self.lines.get_nowait())
            except queue.Empty:
                break
        return items

    def wait(self, timeout: Optional[float] = None) -> Optional[int]:
        """Wait for the process and its reader; the return code (None on timeout)."""
        if self.proc is None:
            return None
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        if self._reader is not None:
            self._reader.join(timeout if timeout is not None else None)
        return rc

    def cancel(self, timeout: float = 10.0) -> None:
        """Kill the whole process tree (children and grandchildren) and wait for it."""
        if self.proc is None:
            return
        self.cancelled = True
        kill_tree(self.proc.pid)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("engine process %d did not exit after a kill", self.proc.pid)


def descendants(pid: int) -> List[int]:
    """Process ids below ``pid`` (Linux ``/proc``; empty where that is unavailable)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    children: Dict[int, List[int]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out: List[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def kill_tree(pid: int, also: Sequence[int] = ()) -> None:
    """Kill ``pid``, its process group and everything it started, also children that left the group.

    ``also``: more processes to kill with it (e.g. the engine interpreter named by a run
    folder's lock, whose launcher may already be gone).
    """
    pids = [p for p in [pid] + list(also) if p and p > 0]
    if WINDOWS:
        for p in pids:
            subprocess.run(["taskkill", "/F", "/T", "/PID", str(p)], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=False,
                           creationflags=CREATE_NO_WINDOW)  # type: ignore[call-arg]
        return
    tree = [d for p in pids for d in descendants(p)]
    for p in pids:
        try:
            os.killpg(p, signal.SIGKILL)  # the session started for the child: pgid == pid
        except (ProcessLookupError, PermissionError, OSError):
            pass
    for p in pids + tree:
        try:
            os.kill(p, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def wait_gone(pid: int, timeout: float, start_time: Optional[str] = None) -> bool:
    """Poll until ``pid`` has exited; True if it did within ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not pid_alive(pid, start_time):
            return True
        time.sleep(0.05)
    return not pid_alive(pid, start_time)


def run_to_end(job: Any, timeout: Optional[float], what: str, interval: float = 0.1) -> str:
    """Poll ``job`` (``poll() -> bool`` when over, ``cancel()``, ``error``, ``status``) until it is over; past
    ``timeout`` seconds cancel it and say so in ``job.error`` (``what`` took longer ...). The final status."""
    end = None if timeout is None else time.monotonic() + timeout
    while not job.poll():
        if end is not None and time.monotonic() > end:
            job.cancel()
            job.error = f"{what} took longer than {timeout:g} s and was stopped"
            break
        time.sleep(interval)
    return job.status
