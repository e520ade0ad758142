"""Stopping a job: ask by file (``RUN/stop.requested``, through any launcher), then, past a timeout,
kill its process group (launcher, interpreter, workers)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Optional

from voxmmsd.jobs.run_folder import RunFolder

from VoxMMSDSegmentationLib import process
from VoxMMSDSegmentationLib.events import EventState
from VoxMMSDSegmentationLib.job_state import STOPPING, JobRecord, JobStatus, _write_record, status

log = logging.getLogger(__name__)

#: seconds a stop request may take before the process group is killed (an iteration, a checkpoint)
STOP_TIMEOUT_S = 120.0


def stop(run_dir: Path) -> bool:
    """Ask the job to write a checkpoint and stop: write ``RUN/stop.requested`` (works through
    any launcher, on every platform). False if nothing runs there. Does not wait; see
    :func:`enforce_stop_timeout` and :func:`stop_and_wait`."""
    current = status(run_dir)
    if not current.active:
        return False
    RunFolder(run_dir).request_stop()
    if current.record is not None:
        current.record.stop_requested = time.time()
        _write_record(current.record)
    log.info("stop requested for %s", run_dir)
    return True


def _stop_time(run_dir: Path, record: Optional[JobRecord]) -> Optional[float]:
    if record is not None and record.stop_requested:
        return record.stop_requested
    try:
        return RunFolder(run_dir).stop_file.stat().st_mtime
    except OSError:
        return None


def stop_timeout(events: EventState, base: float = STOP_TIMEOUT_S) -> float:
    """How long a stop may take: ``base``, and at least three iterations plus a minute (the
    engine stops between iterations, so a slow run, e.g. a large crop on a CPU, needs longer)."""
    if events.started is None or events.last_time is None or len(events.history) < 2:
        return base
    first, last = events.history[0][0], events.history[-1][0]
    if last <= first:
        return base
    per_iteration = (events.last_time - events.started) / float(last - first + 1)
    return max(base, 3.0 * per_iteration + 60.0)


def enforce_stop_timeout(current: JobStatus, timeout: Optional[float] = None, now: Optional[float] = None) -> bool:
    """Kill the process group of a run that was asked to stop more than ``timeout`` seconds ago
    (default :func:`stop_timeout` of its events) and still runs (the engine did not react: hung,
    or too old to know the stop file). True if it was killed. The GUI calls this on every
    refresh; it never blocks."""
    if current.state != STOPPING:
        return False
    asked = _stop_time(current.run_dir, current.record)
    now = time.time() if now is None else now
    timeout = stop_timeout(current.events) if timeout is None else timeout
    if asked is None or now - asked < timeout:
        return False
    log.warning("%s did not stop within %.0f s of the request: killing its process group", current.run_dir,
                timeout)
    _kill(current)
    return True


def _kill(current: JobStatus) -> None:
    record = current.record
    launcher = record.pid if record and process.pid_alive(record.pid, record.process_start) else 0
    engine = [current.engine_pid] if current.engine_pid else []
    if launcher:
        process.kill_tree(launcher, also=engine)
    elif engine:
        process.kill_tree(engine[0])
    if engine and process.wait_gone(engine[0], 10.0):
        _remove_lock_of(current.run_dir, engine[0])


def _remove_lock_of(run_dir: Path, pid: int) -> None:
    """Remove the lock of a trainer this module killed (its holder can no longer do it; a killed
    child not yet reaped by the system would keep the lock looking held)."""
    from voxmmsd.io.lock import lock_path, read_lock

    info = read_lock(Path(run_dir))
    if info and info.get("pid") == pid:
        try:
            lock_path(Path(run_dir)).unlink()
        except FileNotFoundError:
            pass


def stop_and_wait(run_dir: Path, timeout: float = STOP_TIMEOUT_S, poll: float = 0.1) -> str:
    """Blocking stop (console, batch, tests): request, wait up to ``timeout`` s, then kill the group.

    Returns ``"stopped"`` (the engine stopped by itself), ``"killed"`` or ``"not running"``.
    """
    if not stop(run_dir):
        return "not running"
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not status(run_dir).active:
            return "stopped"
        time.sleep(poll)
    current = status(run_dir)
    if not current.active:
        return "stopped"
    _kill(current)
    end = time.monotonic() + 10.0
    while status(run_dir).active and time.monotonic() < end:
        time.sleep(poll)
    return "killed"


def kill(run_dir: Path) -> bool:
    """Kill the job's whole process tree at once (no checkpoint). False if not running."""
    current = status(run_dir)
    if not current.active:
        return False
    _kill(current)
    return True
