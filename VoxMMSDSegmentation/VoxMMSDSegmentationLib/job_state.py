"""The state of a job started from Slicer: its record (``RUN/slicer_job.json``), its events, its
launcher and the engine holding the run folder's lock (see :mod:`VoxMMSDSegmentationLib.jobs`)."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from voxmmsd.jobs.run_folder import RunFolder

from VoxMMSDSegmentationLib import process
from VoxMMSDSegmentationLib.events import EventState, EventTail

JOB_FILE = "slicer_job.json"
OUTPUT_FILE = "slicer_job.out"
EVENTS_FILE = RunFolder(Path("RUN")).events.name

#: job kinds that resume by running the same command again (the engine keeps every finished piece)
RERUN_KINDS = ("cohort", "cohort-pretrain")

#: job states shown to the user
RUNNING, STOPPING, FINISHED, STOPPED, FAILED, DIED = "running", "stopping", "finished", "stopped", "failed", "died"


@dataclass
class JobRecord:
    """The registry entry of one job (``RUN/slicer_job.json``): what was started, on which device, and the
    engine arguments that continue it (made at launch from the options: never read back out of a command)."""

    run_dir: str
    kind: str  # pretrain / finetune / cohort / cohort-pretrain
    command: List[str]  # the command line started: prefix + arguments
    pid: int = 0
    started: float = 0.0
    process_start: Optional[str] = None
    stop_requested: float = 0.0
    launches: int = 1
    extra: Dict[str, Any] = field(default_factory=dict)
    #: the launcher of the engine (``PythonSlicer -m voxmmsd``)
    prefix: List[str] = field(default_factory=list)
    #: the device the job was started on (auto | cpu | cuda): its environment on every launch
    device: str = "auto"
    #: the engine arguments that continue the run (after the prefix)
    resume: List[str] = field(default_factory=list)

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
