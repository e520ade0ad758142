"""Progress events: one JSON object per line, for programs (the Slicer module) to follow.

Every event has ``time`` (Unix seconds), ``stage`` and ``event``; progress events add
``iteration`` and ``total``; training adds ``losses`` and ``lr``. Known ``event`` values:
``start``, ``progress``, ``message``, ``warning``, ``checkpoint``, ``validation``,
``done``, ``stopped``, ``error``.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import IO, Any, Dict, Iterator, List, Optional


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return _clean(value.item())
    return value


class EventWriter:
    """Append events to a JSON-lines file and/or a stream; a disabled writer (rank > 0) drops them."""

    def __init__(self, path: Optional[Path] = None, stream: Optional[IO[str]] = None, enabled: bool = True) -> None:
        self.path = Path(path) if path else None
        self.stream = stream
        self.enabled = enabled
        self._file: Optional[IO[str]] = None
        if enabled and self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8")

    def emit(self, stage: str, event: str = "progress", **fields: Any) -> Dict[str, Any]:
        record = {"time": round(time.time(), 3), "stage": stage, "event": event}
        record.update(_clean(fields))
        if not self.enabled:
            return record
        line = json.dumps(record, separators=(",", ":"))
        if self._file is not None:
            self._file.write(line + "\n")
            self._file.flush()
            os.fsync(self._file.fileno())
        if self.stream is not None:
            self.stream.write(line + "\n")
            self.stream.flush()
        return record

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> "EventWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def stdout_writer(enabled: bool = True) -> EventWriter:
    return EventWriter(stream=sys.stdout, enabled=enabled)


def parse_line(line: str) -> Optional[Dict[str, Any]]:
    """An event from one line, or None if the line is not a JSON event (e.g. a log line)."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) and "stage" in obj else None


def read_events(path: Path) -> List[Dict[str, Any]]:
    """All complete events of a file (a half-written last line is ignored)."""
    return list(iter_events(path))


def iter_events(path: Path) -> Iterator[Dict[str, Any]]:
    p = Path(path)
    if not p.exists():
        return
    with open(p, encoding="utf-8") as f:
        for line in f:
            ev = parse_line(line)
            if ev is not None:
                yield ev
