"""The one signal handler of the command line: SIGTERM (and SIGHUP) end a command the way Ctrl-C does.

Python's default for SIGTERM ends the process on the spot: no ``finally`` runs, so an output folder kept its
lock file and a half-written ``.staging-*`` folder, and an interrupted batch had no ``summary.csv``.
:func:`handled` turns SIGTERM into :class:`Terminated`, a :class:`KeyboardInterrupt`, so every cleanup that
Ctrl-C already triggers runs for it too (locks released, staging and temporary files removed, the batch's
summary of what was done written); the command then exits with status 128 + the signal's number.

A second signal while the first is being handled is not caught again (the default action ends the process),
so a command stuck in its cleanup can still be stopped. Training runs install their own handlers for their
run (:class:`voxmmsd.jobs.stop.StopFlag`: finish the iteration, write a checkpoint) and restore these after.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from types import FrameType
from typing import Any, Dict, Iterator, List, Optional

log = logging.getLogger(__name__)


class Terminated(KeyboardInterrupt):
    """A termination signal arrived; unwinds like Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_status(self) -> int:
        return 128 + int(self.signum)


def _signals() -> List[int]:
    out: List[int] = [signal.SIGTERM]
    if hasattr(signal, "SIGHUP"):
        out.append(signal.SIGHUP)  # the terminal was closed
    return out


#: the termination signal received inside :func:`handled` (None: none yet). Kept because a cleanup that the
#: :class:`Terminated` unwinds through can fail in turn (e.g. a file closed twice) and replace it with an ordinary
#: error; :func:`pending` lets a loop that carries on after errors (the batch) see that it must stop.
_received: Optional[int] = None


def pending() -> Optional["Terminated"]:
    """A :class:`Terminated` for the termination signal received, or None."""
    return Terminated(_received) if _received is not None else None


def _handler(signum: int, frame: Optional[FrameType]) -> None:
    global _received
    from voxmmsd import interrupts

    if interrupts.deferring():  # a critical section (e.g. creating a lock file) ends first, then raises it again
        interrupts.hold(signum)
        return
    _received = signum
    signal.signal(signum, signal.SIG_DFL)  # a second one ends the process, even in the middle of a cleanup
    log.warning("%s received: stopping; cleaning up", signal.Signals(signum).name)
    raise Terminated(signum)


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """The handler installed for the ``with`` block (main thread only; elsewhere nothing changes), the previous
    handlers restored after it."""
    global _received
    previous: Dict[int, Any] = {}
    _received = None
    if threading.current_thread() is threading.main_thread():
        for sig in _signals():
            previous[sig] = signal.signal(sig, _handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def exit_status(exc: BaseException) -> int:
    """The exit status of a command ended by ``exc`` (a :class:`Terminated` or a plain Ctrl-C)."""
    return exc.exit_status if isinstance(exc, Terminated) else 130
