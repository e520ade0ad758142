"""The folder lock: one owner, a clear refusal naming the holder, stale locks taken over."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from voxmmsd.io.lock import FolderLock, FolderLockedError, lock_path, pid_alive, read_lock


def test_lock_refuses_a_live_holder_and_releases(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        lock_path(tmp_path).write_text(json.dumps({"pid": child.pid, "purpose": "pre-training run"}))
        with pytest.raises(FolderLockedError, match=f"pid {child.pid}"):
            FolderLock(tmp_path, "test").acquire()
        assert read_lock(tmp_path)["pid"] == child.pid  # the holder's lock is untouched
    finally:
        child.kill()
        child.wait()


def test_stale_lock_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock_path(tmp_path).write_text(json.dumps({"pid": dead.pid}))
    with FolderLock(tmp_path, "test") as lock:
        assert lock.held
        assert read_lock(tmp_path)["purpose"] == "test"
    assert not lock_path(tmp_path).exists()


def test_second_lock_in_another_process_is_refused(tmp_path):
    with FolderLock(tmp_path, "writer"):
        code = ("import sys; from voxmmsd.io.lock import FolderLock, FolderLockedError\n"
                f"try:\n    FolderLock(r'{tmp_path}', 'other').acquire()\nexcept FolderLockedError as e:\n"
                "    print(e); sys.exit(3)\n")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert proc.returncode == 3, proc.stderr
        assert "in use by another VoxMMSD process" in proc.stdout


def test_lock_of_an_exited_unreaped_process_is_stale(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        import time

        for _ in range(100):  # wait for it to exit; it stays a zombie until wait()
            if not pid_alive(child.pid):
                break
            time.sleep(0.05)
        lock_path(tmp_path).write_text(json.dumps({"pid": child.pid}))
        with FolderLock(tmp_path, "test") as lock:
            assert lock.held
    finally:
        child.wait()
