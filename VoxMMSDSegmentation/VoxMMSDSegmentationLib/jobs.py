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

The record stores the launcher prefix, the device and the engine arguments that continue the
run, all made at launch (:func:`resume_arguments`): resuming starts ``prefix + resume`` on the
recorded device and never reads a command line back.

The parts: :mod:`~VoxMMSDSegmentationLib.job_state` (record, status),
:mod:`~VoxMMSDSegmentationLib.job_stop` (stop, kill), :mod:`~VoxMMSDSegmentationLib.job_runs`
(the known runs); their names are re-exported here.
"""


from __future__ import annotations

import logging
import subprocess
import time
from pathlib import Path
from typing import List, Mapping, Optional, Sequence, Tuple

from voxmmsd.jobs.run_folder import STOP_FILE as STOP_FILE  # the engine's stop flag file, re-exported

from VoxMMSDSegmentationLib import process
from VoxMMSDSegmentationLib.job_runs import JobMonitor, KnownRuns, default_runs_file
from VoxMMSDSegmentationLib.job_state import (
    DIED,
    EVENTS_FILE,
    FAILED,
    FINISHED,
    JOB_FILE,
    OUTPUT_FILE,
    RERUN_KINDS,
    RUNNING,
    STOPPED,
    STOPPING,
    JobRecord,
    JobStatus,
    _refuse_if_running,
    _write_record,
    clear_stop_request,
    engine_lock,
    read_events,
    read_record,
    status,
    stop_requested,
)
from VoxMMSDSegmentationLib.job_stop import (
    STOP_TIMEOUT_S,
    enforce_stop_timeout,
    kill,
    stop,
    stop_and_wait,
    stop_timeout,
)

__all__ = ["DIED", "EVENTS_FILE", "FAILED", "FINISHED", "JOB_FILE", "OUTPUT_FILE", "RERUN_KINDS", "RUNNING",
           "STOPPED", "STOPPING", "STOP_FILE", "STOP_TIMEOUT_S", "JobMonitor", "JobRecord", "JobStatus", "KnownRuns",
           "clear_stop_request", "default_runs_file", "engine_lock", "enforce_stop_timeout", "kill", "launch",
           "read_events", "read_record", "resume", "resume_arguments", "status", "stop", "stop_and_wait",
           "stop_requested", "stop_timeout"]

log = logging.getLogger(__name__)


def resume_arguments(kind: str, arguments: Sequence[str], run_dir: Path, device: str) -> List[str]:
    """The engine arguments that continue a job of ``kind`` started with ``arguments``: a cohort job runs the
    same command again (the engine keeps every finished piece); a training run continues with
    ``KIND --device DEVICE --resume RUN`` (its own ``config.yaml`` holds every other setting, and the engine
    refuses settings that would change a run it resumes)."""
    if kind in RERUN_KINDS:
        return [str(a) for a in arguments]
    return [kind, "--device", device, "--resume", str(run_dir)]


def launch(run_dir: Path, kind: str, prefix: Sequence[str], arguments: Sequence[str],
           env: Optional[Mapping[str, str]] = None, device: str = "auto",
           launches: int = 1, resume: Optional[Sequence[str]] = None) -> Tuple[JobRecord, subprocess.Popen]:
    """Start ``prefix + arguments`` detached (own process group, no terminal or console window, output to a
    file, the environment of ``device``: :func:`~VoxMMSDSegmentationLib.process.engine_environment`) and
    register it with its device and the arguments that resume it. Refuses a run folder in which a trainer
    still runs.

    Returns the record and the ``Popen`` handle (keep it while the GUI runs so the
    child is reaped; dropping it does not stop the job).
    """
    run_dir = Path(run_dir)
    _refuse_if_running(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    clear_stop_request(run_dir)  # a stale request must not stop the new launch at once
    command = [str(c) for c in list(prefix) + list(arguments)]
    out = open(run_dir / OUTPUT_FILE, "ab")
    try:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=process.engine_environment(env, device),
                                cwd=str(run_dir), close_fds=True,
                                **process.popen_group_kwargs())
    finally:
        out.close()
    again = list(resume) if resume is not None else resume_arguments(kind, arguments, run_dir, device)
    record = JobRecord(run_dir=str(run_dir), kind=kind, command=command, pid=proc.pid, started=time.time(),
                       process_start=process.process_start_time(proc.pid), launches=launches,
                       prefix=[str(c) for c in prefix], device=device, resume=[str(a) for a in again])
    _write_record(record)
    log.info("started %s job %d in %s on device %s", kind, proc.pid, run_dir, device)
    return record, proc


def resume(run_dir: Path, env: Optional[Mapping[str, str]] = None) -> Tuple[JobRecord, subprocess.Popen]:
    """Relaunch a stopped, failed or died job from its last checkpoint, on the device it was started on (never
    while a trainer still runs there: its launcher, or the engine holding the run's lock)."""
    from voxmmsd.errors import InputError

    current = status(run_dir)
    record = current.record
    if record is None:
        raise InputError(f"{run_dir} was not started from Slicer (no {JOB_FILE}); resume it with "
                         f"'voxmmsd {current.kind} --resume {run_dir}'.")
    if current.active:
        who = f" (pid {current.engine_pid})" if current.engine_pid else ""
        raise InputError(f"The job in {run_dir} is still {current.state}{who}; stop it before resuming.")
    if not record.prefix or not record.resume:
        raise InputError(f"{run_dir} was started by an older version of the module (its {JOB_FILE} does not say how "
                         f"to continue it); resume it with 'voxmmsd {record.kind} --resume {run_dir}', or start a "
                         f"new run.")
    return launch(Path(run_dir), record.kind, record.prefix, record.resume, env, record.device,
                  launches=record.launches + 1, resume=record.resume)
