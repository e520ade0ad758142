"""Short critical sections that a termination signal must not split (ground floor: imports nothing of the engine).

Inside ``with critical():`` the command line's SIGTERM/SIGHUP handler (:mod:`voxmmsd.jobs.signals`) only notes
the signal; when the outermost section ends, the signal is raised again and unwinds as usual. Used where an
interrupt between two steps would leave something behind, e.g. between creating a lock file and the lock knowing
the file is its own (:mod:`voxmmsd.io.lock`). Plain Python: the handler runs in the main thread whatever thread
the operating system delivered the signal to, so this holds with reading and writing threads running.
"""

from __future__ import annotations

import contextlib
import signal
from typing import Iterator, Optional

_depth = 0
_held: Optional[int] = None


def deferring() -> bool:
    """Whether a critical section is running (a handler should :func:`hold` its signal instead of acting)."""
    return _depth > 0


def hold(signum: int) -> None:
    """Note ``signum`` to raise again when the outermost critical section ends."""
    global _held
    _held = signum


@contextlib.contextmanager
def critical() -> Iterator[None]:
    global _depth, _held
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0 and _held is not None:
            signum, _held = _held, None
            signal.raise_signal(signum)  # its handler runs now, outside the section
