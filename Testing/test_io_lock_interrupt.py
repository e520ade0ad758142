"""An interrupt (Ctrl-C, SIGTERM turned into KeyboardInterrupt) while a lock is being taken leaves no lock file."""

from pathlib import Path

import pytest
from voxmmsd.io import lock as lock_mod
from voxmmsd.io.lock import FolderLock, lock_path


def test_interrupt_while_writing_the_record_removes_the_lock(tmp_path: Path, monkeypatch) -> None:
    def stopped(*a, **k):
        raise KeyboardInterrupt("SIGTERM")

    monkeypatch.setattr(lock_mod.json, "dump", stopped)
    with pytest.raises(KeyboardInterrupt):
        with FolderLock(tmp_path, "test"):
            pass  # never reached
    assert not lock_path(tmp_path).exists()


def test_interrupt_after_the_file_is_made_but_before_it_is_held(tmp_path: Path, monkeypatch) -> None:
    real = FolderLock._create

    def created_then_stopped(self):
        assert real(self)
        raise KeyboardInterrupt("SIGTERM")  # as if the signal came right after the file was written

    monkeypatch.setattr(FolderLock, "_create", created_then_stopped)
    with pytest.raises(KeyboardInterrupt):
        with FolderLock(tmp_path, "test"):
            pass
    assert not lock_path(tmp_path).exists()


def test_a_normal_lock_is_released_and_a_live_holder_blocks(tmp_path: Path) -> None:
    with FolderLock(tmp_path, "test"):
        assert lock_path(tmp_path).exists()
        with pytest.raises(lock_mod.FolderLockedError):
            # the same pid counts as alive only for other processes: fake another live holder
            import json
            import os
            rec = json.loads(lock_path(tmp_path).read_text())
            rec["pid"] = os.getppid()
            lock_path(tmp_path).write_text(json.dumps(rec))
            FolderLock(tmp_path, "other").acquire()
    # the record now names another process: the holder leaves the file of that process alone
    assert lock_path(tmp_path).exists()


@pytest.mark.skipif(not hasattr(__import__("signal"), "SIGTERM") or __import__("sys").platform == "win32",
                    reason="POSIX signals")
def test_a_real_sigterm_as_the_file_is_created_leaves_no_lock(tmp_path: Path, monkeypatch) -> None:
    """A real SIGTERM (the command line's handler) right as os.open has created the file, before the lock knows
    it is its own — with another thread running, as in a batch — leaves no lock file (a batch interrupted as it
    claimed its next case left case001/.voxmmsd.lock behind)."""
    import os
    import signal
    import threading

    from voxmmsd.jobs import signals

    real_open = os.open

    def open_then_signal(*a, **k):
        fd = real_open(*a, **k)
        os.kill(os.getpid(), signal.SIGTERM)  # the handler runs at the next bytecode unless the section defers it
        return fd

    stop = threading.Event()
    busy = threading.Thread(target=stop.wait, daemon=True)  # the OS may deliver the signal to this thread
    busy.start()
    try:
        with signals.handled():
            monkeypatch.setattr(lock_mod.os, "open", open_then_signal)
            with pytest.raises(KeyboardInterrupt):
                with FolderLock(tmp_path, "test"):
                    pass
            monkeypatch.undo()
    finally:
        stop.set()
    assert not lock_path(tmp_path).exists()
