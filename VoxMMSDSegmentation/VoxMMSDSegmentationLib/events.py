"""Follow an engine's JSON events: progress, losses, ETA, warnings, diagnostics, outcome.

Lines are parsed by :func:`voxmmsd.jobs.events.parse_line` (the engine's own parser);
anything that is not an event is a log line. :class:`EventState` folds events into
what the GUI shows; :class:`EventTail` follows a growing ``events.jsonl`` by byte
offset, so that a refresh reads only what was appended. Plain Python, tested without Slicer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from voxmmsd.jobs.events import parse_line

#: events that end a run, and the state they leave it in
FINAL_EVENTS = {"done": "finished", "stopped": "stopped", "error": "failed"}

#: the stages of one ``voxmmsd segment`` run in order, with their share of the progress bar
SEGMENT_STAGES: Tuple[Tuple[str, float], ...] = (
    ("read", 0.08), ("check", 0.02), ("preprocess", 0.08), ("predict", 0.72), ("postprocess", 0.05),
    ("write", 0.05))


def stage_fraction(stage: str, iteration: int = 0, total: int = 0) -> Optional[float]:
    """Overall progress in [0, 1] of a segmentation at ``iteration``/``total`` of ``stage``
    (None for a stage that is not one of :data:`SEGMENT_STAGES`)."""
    start = 0.0
    for name, weight in SEGMENT_STAGES:
        if name == stage:
            inner = min(1.0, max(0.0, iteration / float(total))) if total > 0 else 0.0
            return start + weight * inner
        start += weight
    return None


@dataclass
class EventState:
    """What is known about a run from its events so far."""

    stage: str = ""
    iteration: int = 0
    total: int = 0
    message: str = ""
    losses: Dict[str, float] = field(default_factory=dict)
    lr: Optional[float] = None
    eta_s: Optional[float] = None
    outcome: Optional[str] = None  # finished / stopped / failed, once a final event arrived
    error: str = ""
    warnings: List[str] = field(default_factory=list)
    #: every warning event as ``{"kind", "message"}`` (kinds: collapse, uncertainty, thick_slices, ...)
    alerts: List[Dict[str, str]] = field(default_factory=list)
    #: the latest pre-training ``diagnostics`` (teacher/student entropy, kl, voxel_cosine, center_norm)
    diagnostics: Dict[str, float] = field(default_factory=dict)
    #: a segmentation: progress runs over all of :data:`SEGMENT_STAGES` (training: iteration/total)
    staged: bool = False
    #: progress of a segmentation over all its stages (None: no staged events seen)
    stage_progress: Optional[float] = None
    outputs: Dict[str, Any] = field(default_factory=dict)
    validation: Dict[str, Any] = field(default_factory=dict)
    checkpoint: str = ""
    #: (iteration, {loss name: value}) of every progress event with losses, for the loss plot
    history: List[Tuple[int, Dict[str, float]]] = field(default_factory=list)
    started: Optional[float] = None
    last_time: Optional[float] = None

    @property
    def fraction(self) -> float:
        """Progress in [0, 1]; 1 once finished."""
        if self.outcome == "finished":
            return 1.0
        if self.stage_progress is not None:
            return self.stage_progress
        if self.total <= 0:
            return 0.0
        return min(1.0, max(0.0, self.iteration / float(self.total)))

    def apply(self, event: Dict[str, Any]) -> None:
        """Fold one event into the state."""
        kind = str(event.get("event", "progress"))
        self.stage = str(event.get("stage", self.stage))
        when = event.get("time")
        if isinstance(when, (int, float)):
            self.last_time = float(when)
            if self.started is None:
                self.started = float(when)
        if "message" in event and event["message"] is not None:
            self.message = str(event["message"])
        if kind == "start":
            self.outcome, self.error = None, ""
        if "total" in event:
            self.total = _int(event.get("total"), self.total)
            self.iteration = _int(event.get("iteration"), 0 if kind == "start" else self.iteration)
        elif "iteration" in event:
            self.iteration = _int(event.get("iteration"), self.iteration)
        staged = stage_fraction(self.stage, self.iteration if "iteration" in event else 0,
                                self.total if "total" in event else 0) if self.staged else None
        if staged is not None:  # the bar never moves back, also when a stage reports no counts
            self.stage_progress = max(self.stage_progress or 0.0, staged)
        if kind == "progress":
            diagnostics = _losses(event.get("diagnostics"))
            if diagnostics:
                self.diagnostics = diagnostics
            losses = _losses(event.get("losses"))
            if losses:
                self.losses = losses
                self.history.append((self.iteration, losses))
            if isinstance(event.get("lr"), (int, float)):
                self.lr = float(event["lr"])
            if isinstance(event.get("eta_s"), (int, float)):
                self.eta_s = float(event["eta_s"])
        elif kind == "warning":
            message = str(event.get("message", ""))
            self.warnings.append(message)
            self.alerts.append({"kind": str(event.get("kind") or "warning"), "message": message})
        elif kind == "checkpoint":
            self.checkpoint = str(event.get("path", event.get("file", "")))
        elif kind == "validation":
            self.validation = {k: v for k, v in event.items() if k not in ("time", "stage", "event")}
        if kind in FINAL_EVENTS:
            self.outcome = FINAL_EVENTS[kind]
            if kind == "error":
                self.error = str(event.get("message", "the engine reported an error"))
            if isinstance(event.get("outputs"), dict):
                self.outputs = dict(event["outputs"])

    def feed_line(self, line: str) -> Optional[Dict[str, Any]]:
        """Apply ``line`` if it is an event; return the event (None for a log line)."""
        event = parse_line(line)
        if event is not None:
            self.apply(event)
        return event

    def describe(self) -> str:
        """One status line: ``iteration 120/1000 (12%) loss 0.412 ETA 5 min 3 s``."""
        parts: List[str] = []
        if self.stage:
            parts.append(self.stage)
        if self.total:
            parts.append(f"{self.iteration}/{self.total} ({self.fraction:.0%})")
        if self.losses:
            parts.append(" ".join(f"{k} {v:.4g}" for k, v in sorted(self.losses.items())))
        if self.eta_s is not None and self.outcome is None:
            parts.append("ETA " + format_duration(self.eta_s))
        if self.diagnostics:
            parts.append(" ".join(f"{k} {v:.3g}" for k, v in sorted(self.diagnostics.items())))
        if self.outcome:
            parts.append(self.outcome + (f": {self.error}" if self.error else ""))
        elif self.message:
            parts.append(self.message)
        return " | ".join(parts)


    def alerts_of(self, kind: str) -> List[str]:
        """Messages of the warning events of one ``kind`` (e.g. ``collapse``)."""
        return [a["message"] for a in self.alerts if a["kind"] == kind]


class EventTail:
    """The :class:`EventState` of a growing ``events.jsonl``, kept current by the engine's own
    :class:`voxmmsd.jobs.events.EventTail`: each :meth:`update` reads only the bytes appended
    since the last one (a half-written last line waits for its end). A file that shrank or was
    replaced (a resume drops the events after its checkpoint) is folded again from the start."""

    def __init__(self, path: Path) -> None:
        from voxmmsd.jobs.events import EventTail as FileTail

        self.path = Path(path)
        self._tail = FileTail(self.path)
        self.state = EventState()

    @property
    def offset(self) -> int:
        return self._tail.offset

    def update(self) -> int:
        """Fold the new complete events into :attr:`state`; the number of new events."""
        events = self._tail.read_new()
        if self._tail.restarted:
            self.state = EventState()
        for event in events:
            self.state.apply(event)
        return len(events)


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _losses(value: Any) -> Dict[str, float]:
    if not isinstance(value, dict):
        return {}
    out = {}
    for k, v in value.items():
        if isinstance(v, (int, float)) and math.isfinite(float(v)):
            out[str(k)] = float(v)
    return out


def format_duration(seconds: float) -> str:
    """``3 h 4 min``, ``5 min 3 s`` or ``12 s``."""
    s = int(round(max(0.0, seconds)))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    if h:
        return f"{h} h {m} min"
    if m:
        return f"{m} min {sec} s"
    return f"{sec} s"


def read_state(lines: List[str]) -> EventState:
    """The state after all ``lines`` (e.g. a run's ``events.jsonl``)."""
    state = EventState()
    for line in lines:
        state.feed_line(line)
    return state
