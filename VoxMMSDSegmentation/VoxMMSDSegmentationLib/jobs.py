"""Training jobs as detached processes that outlive Slicer, and re-attaching to them.

A job is a run folder. Launching writes ``RUN/slicer_job.json`` (pid, command, start)
and sends the engine's console output to ``RUN/slicer_job.out``; the engine writes
``RUN/events.jsonl``. Whatever starts Slicer again reads both to show the state:
the events decide finished/stopped/failed; without a final event, a live pid means
running and a dead one means the process died (crash, kill, reboot).
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from VoxMMSDSegmentationLib import process
from VoxMMSDSegmentationLib.events import EventState

log = logging.getLogger(__name__)

JOB_FILE = "slicer_job.json"
OUTPUT_FILE = "slicer_job.out"
EVENTS_FILE = "events.jsonl"

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

    @property
    def active(self) -> bool:
        return self.state in (RUNNING, STOPPING)

    @property
    def resumable(self) -> bool:
        return self.state in (STOPPED, FAILED, DIED) and (self.run_dir / "checkpoints" / "last.pt").exists()

    @property
    def model_dir(self) -> Optional[Path]:
        """The model package a finished fine-tuning run wrote, if any."""
        folder = self.run_dir / "model"
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


def launch(run_dir: Path, kind: str, command: Sequence[str], env: Optional[Mapping[str, str]] = None,
           launches: int = 1) -> "tuple[JobRecord, subprocess.Popen]":
    """Start ``command`` detached (own session, no terminal, output to a file) and register it.

    Returns the record and the ``Popen`` handle (keep it while the GUI runs so the
    child is reaped; dropping it does not stop the job).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    out = open(run_dir / OUTPUT_FILE, "ab")
    try:
        proc = subprocess.Popen([str(c) for c in command], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=dict(env) if env is not None else None,
                                cwd=str(run_dir), close_fds=True,
                                **process._popen_group_kwargs(detached=True))  # type: ignore[arg-type]
    finally:
        out.close()
    record = JobRecord(run_dir=str(run_dir), kind=kind, command=[str(c) for c in command], pid=proc.pid,
                       started=time.time(), process_start=process.process_start_time(proc.pid), launches=launches)
    _write_record(record)
    log.info("started %s job %d in %s", kind, proc.pid, run_dir)
    return record, proc


def read_events(run_dir: Path) -> EventState:
    """The state from ``RUN/events.jsonl`` (empty state if the file is missing)."""
    state = EventState()
    path = Path(run_dir) / EVENTS_FILE
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.endswith("\n"):  # a half-written last line is read next time
                    state.feed_line(line)
    except OSError:
        pass
    return state


def status(run_dir: Path) -> JobStatus:
    """Re-attach to ``run_dir``: its state from the events and whether its process lives."""
    run_dir = Path(run_dir)
    record = read_record(run_dir)
    events = read_events(run_dir)
    kind = record.kind if record else _kind_from_events(events)
    alive = bool(record and process.pid_alive(record.pid, record.process_start))
    if alive:
        state = STOPPING if record and record.stop_requested else RUNNING
    elif events.outcome:
        state = events.outcome
    else:
        state = DIED
    # a resumed run may hold the final event of an earlier launch: a live process wins (above)
    return JobStatus(run_dir, kind, state, events, record)


def _kind_from_events(events: EventState) -> str:
    return events.stage if events.stage in ("pretrain", "finetune") else "unknown"


def stop(run_dir: Path) -> bool:
    """Ask the job to write a checkpoint and stop (it emits a ``stopped`` event). False if not running."""
    record = read_record(run_dir)
    if record is None or not process.pid_alive(record.pid, record.process_start):
        return False
    if not process.request_stop(record.pid):
        return False
    record.stop_requested = time.time()
    _write_record(record)
    return True


def kill(run_dir: Path) -> bool:
    """Kill the job's whole process tree at once (no checkpoint). False if not running."""
    record = read_record(run_dir)
    if record is None or not process.pid_alive(record.pid, record.process_start):
        return False
    process.kill_tree(record.pid)
    return True


def resume_command(command: Sequence[str], run_dir: Path) -> List[str]:
    """The command that continues ``run_dir``: the launcher and sub-command of ``command``, its
    ``--device``, and ``--resume RUN``. The run's own ``config.yaml`` holds every other setting
    (the engine refuses settings that would change a run it resumes)."""
    command = list(command)
    sub = next((i for i, a in enumerate(command) if a in ("pretrain", "finetune")), len(command) - 1)
    out = command[:sub + 1]
    for i, arg in enumerate(command[sub + 1:], start=sub + 1):
        if arg == "--device" and i + 1 < len(command):
            out += ["--device", command[i + 1]]
        elif arg.startswith("--device="):
            out.append(arg)
    return out + ["--resume", str(run_dir)]


def resume(run_dir: Path, env: Optional[Mapping[str, str]] = None) -> "tuple[JobRecord, subprocess.Popen]":
    """Relaunch a stopped, failed or died job from its last checkpoint."""
    from voxmmsd.errors import InputError

    current = status(run_dir)
    if current.record is None:
        raise InputError(f"{run_dir} was not started from Slicer (no {JOB_FILE}); resume it with "
                         f"'voxmmsd {current.kind} --resume {run_dir}'.")
    if current.active:
        raise InputError(f"The job in {run_dir} is still {current.state}; stop it before resuming.")
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
        """Status of every known run that still exists on disk (re-attachment)."""
        return [status(p) for p in self.list() if p.is_dir()]

    def _save(self, runs: List[Path]) -> None:
        from voxmmsd.io.atomic import write_json

        write_json(self.path, {"runs": [str(p) for p in runs]})


def default_runs_file() -> Path:
    """``slicer_runs.json`` in the engine's per-user folder (``$VOXMMSD_HOME`` when set)."""
    from VoxMMSDSegmentationLib.models import user_home

    return user_home() / "slicer_runs.json"
