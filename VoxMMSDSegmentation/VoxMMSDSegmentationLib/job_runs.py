"""The run folders the module shows, and their states kept up to date cheaply."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List

from VoxMMSDSegmentationLib.events import EventTail
from VoxMMSDSegmentationLib.job_state import EVENTS_FILE, JobStatus, status


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
