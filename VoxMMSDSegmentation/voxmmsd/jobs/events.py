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


def truncate_events(path: Path, iteration: int) -> int:
    """Drop the events of iterations after ``iteration`` (a resume continues from there); return how many.

    Lines without an ``iteration`` (and log lines) are kept; a half-written last line (a killed
    process) is dropped. The file is replaced atomically.
    """
    from voxmmsd.io.atomic import write_text

    p = Path(path)
    if not p.exists():
        return 0
    kept, dropped = [], 0
    with open(p, encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):  # half-written by a killed process
                dropped += 1
                continue
            ev = parse_line(line)
            it = ev.get("iteration") if ev is not None else None
            if isinstance(it, (int, float)) and it > iteration:
                dropped += 1
                continue
            kept.append(line)
    if dropped:
        write_text(p, "".join(kept))
    return dropped


class EventTail:
    """Follow an events file by byte offset: each :meth:`read_new` returns the complete events added since.

    When the file was replaced or became shorter (a resume drops the events after its
    checkpoint), the tail starts again from the beginning and :attr:`restarted` is True
    for that call, so the reader rebuilds its state from the events it gets.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.offset = 0
        self.restarted = False
        self._ident: Optional[tuple] = None

    def read_new(self) -> List[Dict[str, Any]]:
        self.restarted = False
        try:
            st = os.stat(self.path)
        except OSError:
            return []
        ident = (st.st_dev, st.st_ino)
        if (self._ident is not None and ident != self._ident) or st.st_size < self.offset:
            self.offset, self.restarted = 0, True
        self._ident = ident
        if st.st_size == self.offset:
            return []
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        end = data.rfind(b"\n") + 1  # a half-written last line is read next time
        self.offset += end
        out = []
        for raw in data[:end].decode("utf-8", errors="replace").splitlines():
            ev = parse_line(raw)
            if ev is not None:
                out.append(ev)
        return out

