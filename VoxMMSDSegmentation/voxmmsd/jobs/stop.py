"""Stop requests a training loop checks between iterations: SIGINT/SIGTERM (SIGBREAK on Windows) or a stop file.

The stop file (``RUN/stop.requested``, :attr:`voxmmsd.jobs.run_folder.RunFolder.stop_file`)
works through launchers that forward no signal (Slicer's ``PythonSlicer``) and on every
platform: whoever wants the run to stop creates it; the run removes it when it starts.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any, Dict, Optional

log = logging.getLogger(__name__)


class StopFlag:
    """Set by a signal, by ``stop_file`` appearing, or by :meth:`request`; the loop writes a checkpoint and exits.

    A second signal while stopping restores the default handler, so a third one kills.
    """

    def __init__(self, stop_file: Optional[Path] = None) -> None:
        self._event = threading.Event()
        self._previous: Dict[int, Any] = {}
        self.signal_name: Optional[str] = None
        self.stop_file = Path(stop_file) if stop_file is not None else None

    def request(self, reason: str = "requested") -> None:
        self.signal_name = reason
        self._event.set()

    @property
    def requested(self) -> bool:
        if not self._event.is_set() and self.stop_file is not None and self.stop_file.exists():
            log.warning("%s found: finishing the current iteration, writing a checkpoint, then stopping",
                        self.stop_file)
            self.request(f"the stop file {self.stop_file.name}")
        return self._event.is_set()

    def _handler(self, signum: int, frame: Optional[FrameType]) -> None:
        name = signal.Signals(signum).name
        if self.requested:
            log.warning("second %s: stopping without waiting", name)
            self.restore()
            raise KeyboardInterrupt
        log.warning("%s received: finishing the current iteration, writing a checkpoint, then stopping", name)
        self.request(name)

    def install(self) -> "StopFlag":
        if threading.current_thread() is not threading.main_thread():
            return self
        signals = [signal.SIGINT, signal.SIGTERM]
        if hasattr(signal, "SIGBREAK"):  # Windows: CTRL_BREAK_EVENT is how a job is asked to stop
            signals.append(signal.SIGBREAK)
        for sig in signals:
            self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def __enter__(self) -> "StopFlag":
        return self.install()

    def __exit__(self, *exc: Any) -> None:
        self.restore()
