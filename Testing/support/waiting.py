"""One wait loop for the tests that watch a process or a file."""

from __future__ import annotations

import subprocess
import time
from typing import Callable, Optional


def wait_until(condition: Callable[[], object], timeout: float = 60.0, interval: float = 0.05,
               proc: Optional[subprocess.Popen] = None) -> bool:
    """Poll ``condition`` until it holds (True) or ``timeout`` seconds pass (its last value).

    With ``proc``, fail at once (AssertionError with the end of its stderr) if the process ends
    before the condition holds: a run that crashed is not waited for until the timeout.
    """
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        if proc is not None and proc.poll() is not None:
            if condition():
                return True
            err = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"the process ended early (rc {proc.returncode}): {str(err)[-3000:]}")
        time.sleep(interval)
    return bool(condition())
