"""Training jobs as detached processes that outlive Slicer, and re-attaching to them.

A job is a run folder. Launching writes ``RUN/slicer_job.json`` (pid, command, start)
and sends the engine's console output to ``RUN/slicer_job.out``; the engine writes
``RUN/events.jsonl`` and holds ``RUN/.voxmmsd.lock`` (``voxmmsd.io.lock.FolderLock``,
naming the interpreter's own pid) for as long as it trains. Whatever starts Slicer
again reads these to show the state: a live launcher or a live lock holder means
running; otherwise the events decide finished/stopped/failed, and without a final
event the process died (crash, kill, reboot).

Inside Slicer the engine is started as ``PythonSlicer -m voxmmsd ...``. ``PythonSlicer``
is a launcher: it starts the real interpreter as a child and forwards no signal, so
the pid Slicer gets is not the trainer's. Stop therefore never signals a pid: it
writes ``RUN/stop.requested``, which the engine polls between iterations (it then
writes a checkpoint and emits ``stopped``). Only if the run is still alive after a
timeout is the whole process group killed (launcher, interpreter, workers).
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from voxmmsd.jobs.run_folder import STOP_FILE as STOP_FILE  # the engine's stop flag file, re-exported
from voxmmsd.jobs.run_folder import RunFolder

from VoxMMSDSegmentationLib import process
from VoxMMSDSegmentationLib.events import EventState, EventTail

log = logging.getLogger(__name__)

JOB_FILE = "slicer_job.json"
OUTPUT_FILE = "slicer_job.out"
EVENTS_FILE = RunFolder(Path("RUN")).events.name
#: seconds a stop request may take before the process group is killed (an iteration, a checkpoint)
STOP_TIMEOUT_S = 120.0

#: job kinds that resume by running the same command again (the engine keeps every finished piece)
RERUN_KINDS = ("cohort", "cohort-pretrain")

#: job states shown to the user
RUNNING, STOPPING, FINISHED, STOPPED, FAILED, DIED = "running", "stopping", "finished", "stopped", "failed", "died"


@dataclass
class JobRecord:
    """The registry entry of one job (``RUN/slicer_job.json``)."""

    run_dir: str
    kind: str  # pretrain / finetune
    command: List[str]
    pid: int = 0
    started: float = 0.0
    process_start: Optional[str] = None
    stop_requested: float = 0.0
    launches: int = 1
    extra: Dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "JobRecord":
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}  # type: ignore[attr-defined]
        return cls(**known)


@dataclass
class JobStatus:
    """A job's state for the GUI."""

    run_dir: Path
    kind: str
    state: str
    events: EventState
    record: Optional[JobRecord]
    #: pid of the engine interpreter holding the run folder's lock (None: no live holder)
    engine_pid: Optional[int] = None

    @property
    def active(self) -> bool:
        return self.state in (RUNNING, STOPPING)

    @property
    def resumable(self) -> bool:
        return self.state in (STOPPED, FAILED, DIED) and (RunFolder(self.run_dir).has_checkpoint()
                                                          or self.kind in RERUN_KINDS)

    @property
    def model_dir(self) -> Optional[Path]:
        """The model package a finished fine-tuning run wrote, if any."""
        folder = RunFolder(self.run_dir).model
        return folder if self.kind == "finetune" and (folder / "model.json").is_file() else None


def _write_record(record: JobRecord) -> None:
    from voxmmsd.io.atomic import write_json

    write_json(Path(record.run_dir) / JOB_FILE, record.to_dict())


def read_record(run_dir: Path) -> Optional[JobRecord]:
    """The job record of ``run_dir``, or None if there is none (or it is unreadable)."""
    path = Path(run_dir) / JOB_FILE
    try:
        return JobRecord.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def engine_lock(run_dir: Path) -> Optional[int]:
    """Pid of the live process that holds ``run_dir``'s lock (the trainer), or None."""
    from voxmmsd.io.lock import holder_is_alive, read_lock

    info = read_lock(Path(run_dir))
    if not info or not holder_is_alive(info):
        return None
    try:
        pid = int(info.get("pid", 0))
    except (TypeError, ValueError):
        return None
    if info.get("host") in (None, socket.gethostname()) and not process.pid_alive(pid):
        return None  # exited but not reaped yet (a zombie still answers signal 0)
    return pid or None


def _refuse_if_running(run_dir: Path) -> None:
    from voxmmsd.errors import InputError

    current = status(run_dir)
    if current.active:
        who = f"pid {current.engine_pid}" if current.engine_pid else f"pid {current.record.pid}" \
            if current.record else "another process"
        raise InputError(f"A trainer is already running in {run_dir} ({who}, {current.state}). Wait for it or "
                         f"stop it first: one run folder never gets two trainers.")


def launch(run_dir: Path, kind: str, command: Sequence[str], env: Optional[Mapping[str, str]] = None,
           launches: int = 1) -> "tuple[JobRecord, subprocess.Popen]":
    """Start ``command`` detached (own process group, no terminal or console window, output to a
    file) and register it. Refuses a run folder in which a trainer still runs.

    Returns the record and the ``Popen`` handle (keep it while the GUI runs so the
    child is reaped; dropping it does not stop the job).
    """
    run_dir = Path(run_dir)
    _refuse_if_running(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    clear_stop_request(run_dir)  # a stale request must not stop the new launch at once
    out = open(run_dir / OUTPUT_FILE, "ab")
    try:
        proc = subprocess.Popen([str(c) for c in command], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=dict(env) if env is not None else None,
                                cwd=str(run_dir), close_fds=True,
                                **process.popen_group_kwargs())
    finally:
        out.close()
    record = JobRecord(run_dir=str(run_dir), kind=kind, command=[str(c) for c in command], pid=proc.pid,
                       started=time.time(), process_start=process.process_start_time(proc.pid), launches=launches)
    _write_record(record)
    log.info("started %s job %d in %s", kind, proc.pid, run_dir)
    return record, proc


def read_events(run_dir: Path) -> EventState:
    """The state from ``RUN/events.jsonl`` (empty state if the file is missing)."""
    tail = EventTail(Path(run_dir) / EVENTS_FILE)
    tail.update()
    return tail.state


def status(run_dir: Path, events: Optional[EventState] = None) -> JobStatus:
    """Re-attach to ``run_dir``: its state from the events, its launcher and its lock.

    ``events``: the run's state when the caller already follows ``events.jsonl``
    (:class:`VoxMMSDSegmentationLib.events.EventTail`); read from the file otherwise.
    """
    run_dir = Path(run_dir)
    record = read_record(run_dir)
    events = read_events(run_dir) if events is None else events
    kind = record.kind if record else _kind_from_events(events)
    launcher = bool(record and process.pid_alive(record.pid, record.process_start))
    engine_pid = engine_lock(run_dir)
    if launcher or engine_pid is not None:
        # the launcher may be gone while its child still trains (a signal reached the launcher only)
        state = STOPPING if (record and record.stop_requested) or stop_requested(run_dir) else RUNNING
    elif events.outcome:
        state = events.outcome
    else:
        state = DIED
    # a resumed run may hold the final event of an earlier launch: a live process wins (above)
    return JobStatus(run_dir, kind, state, events, record, engine_pid)


def _kind_from_events(events: EventState) -> str:
    if events.stage in ("pretrain", "finetune", "cohort"):
        return events.stage
    return "cohort-pretrain" if events.stage == "prepare" else "unknown"


def stop_requested(run_dir: Path) -> bool:
    return RunFolder(run_dir).stop_file.exists()


def clear_stop_request(run_dir: Path) -> None:
    RunFolder(run_dir).clear_stop_request()


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


def resume_command(command: Sequence[str], run_dir: Path) -> List[str]:
    """The command that continues ``run_dir``: the launcher and sub-command of ``command``, its
    ``--device``, and ``--resume RUN``. The run's own ``config.yaml`` holds every other setting
    (the engine refuses settings that would change a run it resumes)."""
    command = list(command)
    sub = next((i for i, a in enumerate(command) if a in ("pretrain", "finetune", "cohort")), len(command) - 1)
    if command[sub] == "cohort":  # a cohort run continues by running the same command again
        return command
    out = command[:sub + 1]
    for i, arg in enumerate(command[sub + 1:], start=sub + 1):
        if arg == "--device" and i + 1 < len(command):
            out += ["--device", command[i + 1]]
        elif arg.startswith("--device="):
            out.append(arg)
    return out + ["--resume", str(run_dir)]


def resume(run_dir: Path, env: Optional[Mapping[str, str]] = None) -> "tuple[JobRecord, subprocess.Popen]":
    """Relaunch a stopped, failed or died job from its last checkpoint (never while a trainer
    still runs there: its launcher, or the engine holding the run's lock)."""
    from voxmmsd.errors import InputError

    current = status(run_dir)
    if current.record is None:
        raise InputError(f"{run_dir} was not started from Slicer (no {JOB_FILE}); resume it with "
                         f"'voxmmsd {current.kind} --resume {run_dir}'.")
    if current.active:
        who = f" (pid {current.engine_pid})" if current.engine_pid else ""
        raise InputError(f"The job in {run_dir} is still {current.state}{who}; stop it before resuming.")
    command = resume_command(current.record.command, Path(run_dir))
    return launch(Path(run_dir), current.record.kind, command, env, launches=current.record.launches + 1)


class KnownRuns:
    """The list of run folders that the module shows (a JSON file per user)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def list(self) -> List[Path]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
        return [Path(p) for p in data.get("runs", []) if isinstance(p, str)]

    def add(self, run_dir: Path) -> None:
        runs = [p for p in self.list() if p != Path(run_dir)] + [Path(run_dir)]
        self._save(runs)

    def remove(self, run_dir: Path) -> None:
        self._save([p for p in self.list() if p != Path(run_dir)])

    def statuses(self) -> List[JobStatus]:
        """Status of every known run that still exists on disk (re-attachment); reads every
        ``events.jsonl`` whole (the GUI follows them incrementally with :class:`JobMonitor`)."""
        return [status(p) for p in self.list() if p.is_dir()]

    def _save(self, runs: List[Path]) -> None:
        from voxmmsd.io.atomic import write_json

        write_json(self.path, {"runs": [str(p) for p in runs]})


class JobMonitor:
    """What the Jobs table shows, kept up to date cheaply: each refresh reads only the bytes
    appended to every run's ``events.jsonl`` since the previous refresh, and says which runs
    got new events (so that the GUI redraws only those)."""

    def __init__(self, known: KnownRuns) -> None:
        self.known = known
        self.tails: Dict[Path, EventTail] = {}

    def refresh(self) -> "List[tuple[JobStatus, int]]":
        """``(status, number of new events)`` of every known run that exists."""
        out = []
        runs = [p for p in self.known.list() if p.is_dir()]
        for gone in set(self.tails) - set(runs):
            del self.tails[gone]
        for run in runs:
            tail = self.tails.get(run)
            if tail is None:
                tail = self.tails[run] = EventTail(run / EVENTS_FILE)
            new = tail.update()
            out.append((status(run, events=tail.state), new))
        return out


def default_runs_file() -> Path:
    """``slicer_runs.json`` in the engine's per-user folder (``$VOXMMSD_HOME`` when set)."""
    from VoxMMSDSegmentationLib.models import user_home

    return user_home() / "slicer_runs.json"
