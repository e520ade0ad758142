"""RunFolder paths and clean-up, the stop file, event truncation on resume, EventTail, the Recorder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from voxmmsd.errors import InputError
from voxmmsd.io.lock import FolderLock, FolderLockedError
from voxmmsd.jobs.distributed import DistInfo
from voxmmsd.jobs.events import EventTail, EventWriter, read_events, truncate_events
from voxmmsd.jobs.recorder import Recorder
from voxmmsd.jobs.run_folder import RunFolder
from voxmmsd.jobs.session import training_session
from voxmmsd.jobs.stop import StopFlag


def _events(path: Path, its) -> None:
    with EventWriter(path) as w:
        w.emit("pretrain", "start", iteration=0, total=10)
        for i in its:
            w.emit("pretrain", iteration=i, total=10, losses={"loss": float(i)})


def test_paths_are_named_once(tmp_path: Path) -> None:
    run = RunFolder(tmp_path)
    assert run.last_checkpoint == tmp_path / "checkpoints" / "last.pt" and run.events.name == "events.jsonl"
    assert run.stop_file.name == "stop.requested" and run.lock_file.name == ".voxmmsd.lock"
    assert not run.has_checkpoint() and run.latest_checkpoint() is None
    with pytest.raises(InputError, match="does not exist"):
        run.require_checkpoint("pre-training")
    run.checkpoints.mkdir()
    run.last_checkpoint.write_bytes(b"x")
    assert run.latest_checkpoint() == run.last_checkpoint
    with pytest.raises(InputError, match="already holds a run"):
        run.require_new()


def test_stale_temp_files_are_found_and_removed(tmp_path: Path) -> None:
    from voxmmsd.io.atomic import atomic_path

    run = RunFolder(tmp_path)
    run.checkpoints.mkdir()
    with pytest.raises(RuntimeError):
        with atomic_path(run.last_checkpoint) as tmp:  # the name an interrupted save leaves
            tmp.write_bytes(b"partial")
            name = tmp.name
            os.link(tmp, run.checkpoints / (name + "x"))  # keep a copy, as kill -9 would
            raise RuntimeError
    (run.root / ".loss.png.abc.tmp.png").write_bytes(b"p")
    (run.root / "keep.txt").write_text("user file")
    with FolderLock(run.root, "test"):
        stale = run.stale_temp_files()
        assert [p.name for p in stale] == [".loss.png.abc.tmp.png", name + "x"]  # never the lock
        assert run.clean_temp_files() == stale
    assert run.stale_temp_files() == [] and (run.root / "keep.txt").is_file()


def test_stop_file_is_a_stop_request(tmp_path: Path) -> None:
    run = RunFolder(tmp_path)
    flag = StopFlag(run.stop_file)
    assert not flag.requested
    run.request_stop()
    assert flag.requested and "stop.requested" in (flag.signal_name or "")
    assert run.clear_stop_request() and not run.clear_stop_request()


def test_session_locks_clears_the_stop_file_and_cleans(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "run")
    run.request_stop()  # stale, from an earlier run
    (run.root / ".config.yaml.x.tmp.yaml").write_text("partial")
    with training_session(run, "pre-training run", DistInfo()) as flag:
        assert not run.stop_file.exists() and run.stale_temp_files() == []
        assert json.loads(run.lock_file.read_text())["purpose"] == "pre-training run"
        assert not flag.requested
        run.request_stop()
        assert flag.requested
        with pytest.raises(FolderLockedError, match="pre-training run"):  # the same folder, another owner
            info = json.loads(run.lock_file.read_text())
            info["pid"] = os.getppid()  # a live process that is not us
            run.lock_file.write_text(json.dumps(info))
            FolderLock(run.root, "fine-tuning run").acquire()
    assert not run.lock_file.exists() or json.loads(run.lock_file.read_text())["pid"] != os.getpid()


def test_truncate_drops_only_later_iterations_and_half_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    _events(path, range(1, 8))
    with open(path, "a", encoding="utf-8") as f:
        f.write('{"stage": "pretrain", "iteration": 8')  # killed while writing
    assert truncate_events(path, 4) == 4  # 5, 6, 7 and the half line
    evs = read_events(path)
    assert [e.get("iteration") for e in evs] == [0, 1, 2, 3, 4]
    assert truncate_events(path, 4) == 0 and truncate_events(tmp_path / "none.jsonl", 1) == 0


def test_event_tail_follows_and_restarts_after_a_rewrite(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    tail = EventTail(path)
    assert tail.read_new() == []
    _events(path, range(1, 4))
    assert [e["event"] for e in tail.read_new()] == ["start", "progress", "progress", "progress"]
    with open(path, "a", encoding="utf-8") as f:
        f.write('{"stage": "pretrain", "event": "progress", "iteration": 4')
    assert tail.read_new() == [] and not tail.restarted  # the half line waits
    with open(path, "a", encoding="utf-8") as f:
        f.write(', "total": 10}\n')
    assert [e["iteration"] for e in tail.read_new()] == [4]
    truncate_events(path, 2)  # what a resume does
    again = tail.read_new()
    assert tail.restarted and [e.get("iteration") for e in again] == [0, 1, 2]


def test_recorder_truncates_on_resume_and_writes_log(tmp_path: Path) -> None:
    run = RunFolder(tmp_path)
    _events(run.events, range(1, 6))
    rec = Recorder(run, "pretrain", tensorboard=False, resume_from=3)
    assert rec.dropped_events == 2
    rec.emit("start", iteration=3, total=10, resumed=True)
    import logging

    logging.getLogger("voxmmsd.test").warning("hello log")
    assert rec.plot(lambda p: p.write_bytes(b"png")) == run.loss_plot and run.loss_plot.read_bytes() == b"png"
    rec.close()
    assert [e.get("iteration") for e in read_events(run.events)] == [0, 1, 2, 3, 3]
    assert "hello log" in run.log.read_text()
    off = Recorder(run, "pretrain", enabled=False, resume_from=0)  # ranks > 0 touch nothing
    off.emit("progress", iteration=9)
    off.close()
    assert len(read_events(run.events)) == 5
