"""Progress of a cohort run: its own events, and the progress of the fine-tuning run it is running,
re-emitted as the cohort run's (so that one ``events.jsonl`` drives one progress bar)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Dict, Optional

from voxmmsd.jobs.events import EventTail, EventWriter

STAGE = "cohort"


class CohortEvents:
    """The cohort run's events (``RUN/events.jsonl``, and stdout with ``--progress json``), safe to emit from
    the relay thread and the main thread; ``iteration``/``total`` count training iterations and scored cases
    over the whole run."""

    def __init__(self, path: Path, stream: Any = None) -> None:
        self._file = EventWriter(path)
        self._stream = EventWriter(stream=stream) if stream is not None else None
        self._lock = threading.Lock()
        self.total = 0
        self.done = 0
        self._t0 = time.time()
        self._done0: Optional[int] = None

    def emit(self, event: str = "progress", **fields: Any) -> Dict[str, Any]:
        with self._lock:
            record = self._file.emit(STAGE, event, **fields)
            if self._stream is not None:
                self._stream.emit(STAGE, event, **fields)
            return record

    def progress(self, done: int, message: str, **fields: Any) -> None:
        """``done`` of :attr:`total` steps, with an ETA from this process's own pace."""
        self.done = max(self.done, int(done))
        if self._done0 is None:
            self._done0, self._t0 = self.done, time.time()
        eta = None
        if self.done > self._done0:
            eta = round((time.time() - self._t0) / (self.done - self._done0) * (self.total - self.done), 1)
        self.emit("progress", iteration=self.done, total=self.total, message=message, eta_s=eta, **fields)

    def close(self) -> None:
        self._file.close()


class StageRelay:
    """While a fine-tuning run trains (in this process), re-emit its progress as the cohort run's:
    iteration ``offset + i`` of :attr:`CohortEvents.total`, with its losses."""

    def __init__(self, events: CohortEvents, stage_events: Path, offset: int, label: str,
                 interval: float = 0.5) -> None:
        self.events, self.offset, self.label, self.interval = events, int(offset), label, interval
        self.tail = EventTail(Path(stage_events))
        self._halt = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def tick(self) -> None:
        for ev in self.tail.read_new():
            if ev.get("event") == "progress" and ev.get("stage") == "finetune" and "iteration" in ev:
                self.events.progress(self.offset + int(ev["iteration"]), self.label, losses=ev.get("losses") or {})

    def _loop(self) -> None:
        while not self._halt.wait(self.interval):
            self.tick()

    def __enter__(self) -> "StageRelay":
        self._thread = threading.Thread(target=self._loop, name="voxmmsd-cohort-relay", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._halt.set()
        if self._thread is not None:
            self._thread.join()
        self.tick()
