"""What a training run records, in one place: events, the log file, TensorBoard scalars and plots.

Only the main process (DDP rank 0) writes; on other ranks a :class:`Recorder` drops
everything. When a run resumes from the checkpoint of iteration ``k``, the recorder
first removes the events written after ``k`` by the interrupted process (so no
iteration appears twice in ``events.jsonl``) and TensorBoard purges its steps after ``k``.

The read side (for the Slicer job panel and scripts) is :class:`voxmmsd.jobs.events.EventTail`
and :func:`voxmmsd.jobs.events.read_events`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Dict, Optional

from voxmmsd.jobs.events import EventWriter, truncate_events
from voxmmsd.jobs.run_folder import RunFolder

log = logging.getLogger(__name__)


def attach_log_file(path: Path) -> logging.Handler:
    """Copy the engine's log (``voxmmsd.*``, INFO and up) into ``path``; undo with :func:`detach_log_file`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(str(path), encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S"))
    handler.setLevel(logging.INFO)
    root = logging.getLogger("voxmmsd")
    level = root.getEffectiveLevel()
    if level > logging.INFO:  # keep the console as quiet as asked while the file gets INFO
        for h in logging.getLogger().handlers + root.handlers:
            if h.level < level:
                h.setLevel(level)
        root.setLevel(logging.INFO)
    root.addHandler(handler)
    return handler


def detach_log_file(handler: logging.Handler) -> None:
    logging.getLogger("voxmmsd").removeHandler(handler)
    handler.close()


class Recorder:
    """Events (``stage`` by default), ``log.txt``, TensorBoard and plots of one run folder."""

    def __init__(self, run: RunFolder, stage: str, enabled: bool = True, tensorboard: bool = True,
                 resume_from: Optional[int] = None) -> None:
        self.run, self.stage, self.enabled = run, stage, enabled
        self.dropped_events = 0
        if enabled and resume_from is not None:
            self.dropped_events = truncate_events(run.events, resume_from)
            if self.dropped_events:
                log.info("resuming at iteration %d: dropped %d event(s) the interrupted run wrote after it",
                         resume_from, self.dropped_events)
        self.events = EventWriter(run.events if enabled else None, enabled=enabled)
        self._handler = attach_log_file(run.log) if enabled else None
        self._tb: Any = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional
                log.warning("TensorBoard is not installed; %s stays empty (pip install tensorboard)", run.tensorboard)
            else:
                purge = None if resume_from is None else resume_from + 1
                self._tb = SummaryWriter(str(run.tensorboard), purge_step=purge)

    def emit(self, event: str = "progress", stage: Optional[str] = None, **fields: Any) -> Dict[str, Any]:
        """Write one event (see :mod:`voxmmsd.jobs.events`); returns it."""
        return self.events.emit(stage or self.stage, event, **fields)

    def scalars(self, step: int, values: Dict[str, Any]) -> None:
        """TensorBoard scalars ``{"loss/total": 0.4, ...}`` at ``step`` (None values skipped)."""
        if self._tb is None:
            return
        for k, v in values.items():
            if v is not None:
                self._tb.add_scalar(k, float(v), step)

    def plot(self, draw: Callable[..., Any], *args: Any, path: Optional[Path] = None) -> Optional[Path]:
        """``draw(path, *args)`` into ``path`` (default ``RUN/loss.png``); a failure is logged, not raised."""
        if not self.enabled:
            return None
        target = Path(path) if path is not None else self.run.loss_plot
        try:
            draw(target, *args)
        except ImportError as exc:  # matplotlib missing: the run goes on without the picture
            log.warning("no plot %s: %s", target.name, exc)
            return None
        return target

    def flush(self) -> None:
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._handler is not None:
            detach_log_file(self._handler)
            self._handler = None
        self.events.close()

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
