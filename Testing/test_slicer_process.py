"""Engine processes, event parsing, job state and re-attachment: plain Python, real subprocesses.

The children here are test doubles of the engine (tiny Python scripts that emit the
engine's JSON events); the Slicer-side code under test is the real one.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

MODULE_DIR = Path(__file__).resolve().parents[1] / "VoxMMSDSegmentation"
if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))

from support.waiting import wait_until  # noqa: E402
from voxmmsd.jobs.events import EventWriter  # noqa: E402
from VoxMMSDSegmentationLib import jobs, process  # noqa: E402
from VoxMMSDSegmentationLib.events import EventState, format_duration, read_state  # noqa: E402

posix_only = pytest.mark.skipif(sys.platform.startswith("win"), reason="POSIX process groups")




# ------------------------------------------------------------------ events

def test_event_state_follows_training(tmp_path):
    path = tmp_path / "events.jsonl"
    with EventWriter(path) as w:
        w.emit("pretrain", "start", total=100)
        w.emit("pretrain", "progress", iteration=10, total=100, losses={"distill": 2.5, "recon": 0.5}, lr=0.01,
               eta_s=125.0)
        w.emit("pretrain", "progress", iteration=20, total=100, losses={"distill": 2.0, "recon": float("nan")},
               lr=0.009, eta_s=100.0)
        w.emit("pretrain", "checkpoint", iteration=20, total=100, path="checkpoints/last.pt")
    lines = path.read_text().splitlines() + ["12:00:01 INFO voxmmsd: a log line", "{half a line"]
    state = read_state(lines)
    assert (state.iteration, state.total) == (20, 100)
    assert state.fraction == pytest.approx(0.2)
    assert state.losses == {"distill": 2.0}  # NaN (written as null) dropped
    assert [it for it, _ in state.history] == [10, 20]
    assert state.lr == pytest.approx(0.009) and state.eta_s == 100.0
    assert state.checkpoint == "checkpoints/last.pt"
    assert state.outcome is None
    assert "20/100 (20%)" in state.describe() and "ETA 1 min 40 s" in state.describe()


@pytest.mark.parametrize("event,outcome", [("done", "finished"), ("stopped", "stopped"), ("error", "failed")])
def test_final_events(event, outcome):
    state = EventState()
    state.feed_line(json.dumps({"stage": "segment", "event": "progress", "iteration": 1, "total": 4}))
    state.feed_line(json.dumps({"stage": "segment", "event": "warning", "message": "resampled FLAIR"}))
    state.feed_line(json.dumps({"stage": "segment", "event": event, "message": "boom",
                                "outputs": {"seg": "a.seg.nrrd"}}))
    assert state.outcome == outcome
    assert state.warnings == ["resampled FLAIR"]
    assert state.fraction == (1.0 if outcome == "finished" else 0.25)
    assert (state.error == "boom") == (outcome == "failed")
    assert state.outputs == {"seg": "a.seg.nrrd"}


def test_format_duration():
    assert format_duration(12.4) == "12 s"
    assert format_duration(303) == "5 min 3 s"
    assert format_duration(3 * 3600 + 4 * 60 + 5) == "3 h 4 min"


# ------------------------------------------------------------------ engine process

CHILD = textwrap.dedent("""
    import json, os, subprocess, sys, time
    mode = sys.argv[1]
    pids = [os.getpid()]
    if mode == "tree":
        pids.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"]).pid)
        # a grandchild that leaves the process group: found through /proc
        pids.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                                     start_new_session=True).pid)
    open(sys.argv[2], "w").write(json.dumps(pids))
    print("plain log line", flush=True)
    for i in range(3 if mode == "quick" else 1000):
        print(json.dumps({"time": time.time(), "stage": "segment", "event": "progress",
                          "iteration": i + 1, "total": 3}), flush=True)
        time.sleep(0.01 if mode == "quick" else 0.2)
    print(json.dumps({"stage": "segment", "event": "done", "outputs": {}}), flush=True)
    sys.exit(0 if mode == "quick" else 3)
""")


def test_engine_process_streams_lines(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    proc = process.EngineProcess([sys.executable, str(script), "quick", str(tmp_path / "pids.json")]).start()
    assert proc.wait(30) == 0
    items = []
    assert wait_until(lambda: items.extend(proc.poll()) or (items and items[-1][0] == "exit"))
    lines = [v for k, v in items if k == "line"]
    assert lines[0] == "plain log line"
    state = read_state(lines)
    assert state.outcome == "finished" and state.iteration == 3
    assert items[-1] == ("exit", 0)


@posix_only
def test_cancel_kills_the_process_tree(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    pid_file = tmp_path / "pids.json"
    proc = process.EngineProcess([sys.executable, str(script), "tree", str(pid_file)]).start()
    seen = []
    assert wait_until(lambda: seen.extend(proc.poll()) or any(k == "line" and "progress" in str(v) for k, v in seen))
    pids = json.loads(pid_file.read_text())
    assert len(pids) == 3 and all(process.pid_alive(p) for p in pids)
    proc.cancel()
    assert not proc.running and proc.cancelled
    for pid in pids:
        assert process.wait_gone(pid, 10), f"process {pid} survived the cancel"


def test_engine_command_and_environment(tmp_path):
    cmd = process.engine_command(["segment", "--out", tmp_path], python="/opt/Slicer/bin/PythonSlicer")
    assert cmd == ["/opt/Slicer/bin/PythonSlicer", "-m", "voxmmsd", "segment", "--out", str(tmp_path)]
    env = process.engine_environment({"PYTHONPATH": "/x", "PATH": "/bin"}, device="cpu")
    assert env["PYTHONPATH"].split(os.pathsep) == [str(process.ENGINE_DIR), "/x"]
    assert env["CUDA_VISIBLE_DEVICES"] == "-1" and env["PYTHONUNBUFFERED"] == "1"
    assert "CUDA_VISIBLE_DEVICES" not in process.engine_environment({}, device="auto")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "PythonSlicer").write_text("")
    assert process.slicer_python(str(tmp_path)) == str(tmp_path / "bin" / "PythonSlicer")
    assert process.slicer_python(None) is None


def test_real_engine_runs_as_a_process():
    """The bundled engine starts as ``python -m voxmmsd`` with the module's environment."""
    proc = process.EngineProcess(process.engine_command(["--version"]), env=process.engine_environment()).start()
    assert proc.wait(60) == 0
    lines = []
    assert wait_until(lambda: lines.extend(v for k, v in proc.poll() if k == "line") or bool(lines))
    assert lines[0].startswith("voxmmsd ")


# ------------------------------------------------------------------ detached jobs

TRAINER = textwrap.dedent("""
    # test double of 'voxmmsd pretrain' keeping the engine's agreed interface: events.jsonl, the run
    # folder locked (FolderLock) for the whole run, RUN/stop.requested polled between iterations
    # (removed at start), SIGINT/SIGTERM through StopFlag, --resume, checkpoints/last.pt
    import argparse, json, os, sys, time
    from pathlib import Path
    from voxmmsd.io.lock import FolderLock
    from voxmmsd.jobs.events import EventWriter, read_events
    from voxmmsd.jobs.stop import StopFlag
    p = argparse.ArgumentParser()
    p.add_argument("command"); p.add_argument("--out"); p.add_argument("--resume"); p.add_argument("--total", type=int)
    p.add_argument("--sleep", type=float, default=0.05)
    p.add_argument("--ignore-stop", action="store_true", help="a hung engine: never looks at the stop file")
    p.add_argument("--device")
    a = p.parse_args()
    run = Path(a.resume or a.out)
    run.mkdir(parents=True, exist_ok=True)
    with FolderLock(run, "pre-training run"):
        (run / "stop.requested").unlink(missing_ok=True)
        (run / "engine.pid").write_text(str(os.getpid()))
        if a.total is None:  # like the engine, a resumed run keeps its own settings
            a.total = int((run / "total.txt").read_text())
        (run / "total.txt").write_text(str(a.total))
        start = 0
        if a.resume:
            start = max([e.get("iteration", 0) for e in read_events(run / "events.jsonl")
                         if e["event"] == "checkpoint"])
        with EventWriter(run / "events.jsonl") as ev, StopFlag() as stop:
            ev.emit(a.command, "start", iteration=start, total=a.total)
            for it in range(start + 1, a.total + 1):
                time.sleep(a.sleep)
                ev.emit(a.command, "progress", iteration=it, total=a.total, losses={"loss": 1.0 / it}, lr=0.01,
                        eta_s=(a.total - it) * a.sleep)
                if not a.ignore_stop and (run / "stop.requested").exists():
                    stop.request("stop file")
                if stop.requested:
                    (run / "checkpoints").mkdir(exist_ok=True)
                    (run / "checkpoints" / "last.pt").write_text(str(it))
                    ev.emit(a.command, "checkpoint", iteration=it, total=a.total)
                    ev.emit(a.command, "stopped", iteration=it, total=a.total)
                    sys.exit(0)
            ev.emit(a.command, "done", iteration=a.total, total=a.total)
""")

#: stands in for PythonSlicer: starts the interpreter as a child in its own process group and
#: forwards no signal (SIGTERM kills the launcher, the child goes on)
LAUNCHER = textwrap.dedent("""
    import subprocess, sys
    child = subprocess.Popen(sys.argv[1:])
    sys.exit(child.wait())
""")


@pytest.fixture
def trainer(tmp_path):
    script = tmp_path / "trainer.py"
    script.write_text(TRAINER)
    return script


@pytest.fixture
def launcher(tmp_path):
    script = tmp_path / "launcher.py"
    script.write_text(LAUNCHER)
    return [sys.executable, str(script)]


@posix_only
def test_job_stop_reattach_resume(tmp_path, trainer):
    run = tmp_path / "run"
    cmd = [sys.executable, str(trainer)], ["pretrain", "--out", str(run), "--total", "60"]
    record, handle = jobs.launch(run, "pretrain", *cmd)
    assert jobs.read_record(run).pid == handle.pid
    assert wait_until(lambda: jobs.status(run).events.iteration >= 3)
    st = jobs.status(run)  # what a reopened module sees: registry + events.jsonl
    assert st.state == jobs.RUNNING and st.kind == "pretrain" and st.events.losses
    assert jobs.stop(run)
    assert jobs.status(run).state in (jobs.STOPPING, jobs.STOPPED)
    assert handle.wait(20) == 0
    st = jobs.status(run)
    assert st.state == jobs.STOPPED and st.resumable
    stopped_at = st.events.iteration
    assert 3 <= stopped_at < 60

    record2, handle2 = jobs.resume(run)
    assert record2.command[-2:] == ["--resume", str(run)] and record2.launches == 2
    assert record2.command[-4:-2] == ["--device", "auto"] and record2.device == "auto"
    assert handle2.wait(60) == 0
    st = jobs.status(run)
    assert st.state == jobs.FINISHED and st.events.iteration == 60
    iterations = [it for it, _ in st.events.history]
    assert min(iterations[iterations.index(stopped_at) + 1:]) == stopped_at + 1  # continued, not restarted


def engine_pid_of(run):
    assert wait_until(lambda: (run / "engine.pid").is_file())
    return int((run / "engine.pid").read_text())


@posix_only
def test_stop_through_a_launcher_that_forwards_no_signal(tmp_path, trainer, launcher):
    """PythonSlicer-like launcher: Stop must reach the interpreter behind it (the stop file)."""
    run = tmp_path / "run"
    record, handle = jobs.launch(run, "pretrain", launcher + [sys.executable, str(trainer)], ["pretrain", "--out",
                                                              str(run), "--total", "100000"])
    assert wait_until(lambda: jobs.status(run).events.iteration >= 3)
    engine = engine_pid_of(run)
    assert engine != record.pid and jobs.status(run).engine_pid == engine  # the lock names the real trainer
    assert jobs.stop(run) and jobs.stop_requested(run)
    assert jobs.status(run).state == jobs.STOPPING
    assert handle.wait(30) == 0  # the launcher ends because its child stopped by itself
    assert process.wait_gone(engine, 10)
    st = jobs.status(run)
    assert st.state == jobs.STOPPED and st.resumable and st.engine_pid is None
    assert (run / "checkpoints" / "last.pt").is_file()


@posix_only
def test_launcher_killed_alone_never_allows_a_second_trainer(tmp_path, trainer, launcher):
    """The old bug: SIGTERM to the launcher's pid kills the launcher only; training goes on.
    The run must still show as running (the engine holds the lock) and Resume must refuse."""
    import signal

    from voxmmsd.errors import InputError

    run = tmp_path / "run"
    cmd = launcher + [sys.executable, str(trainer)], ["pretrain", "--out", str(run), "--total", "100000"]
    record, handle = jobs.launch(run, "pretrain", *cmd)
    assert wait_until(lambda: jobs.status(run).events.iteration >= 2)
    engine = engine_pid_of(run)
    os.kill(record.pid, signal.SIGTERM)  # what the old Stop did
    handle.wait(10)
    assert not process.pid_alive(record.pid) and process.pid_alive(engine)
    before = jobs.status(run).events.iteration
    assert wait_until(lambda: jobs.status(run).events.iteration > before + 2)  # training goes on ...
    st = jobs.status(run)
    assert st.state == jobs.RUNNING and st.engine_pid == engine  # ... and is shown as such, not "died"
    with pytest.raises(InputError, match="still running"):
        jobs.resume(run)
    with pytest.raises(InputError, match="never gets two trainers"):
        jobs.launch(run, "pretrain", *cmd)
    assert jobs.stop_and_wait(run, timeout=30) == "stopped"  # the stop file reaches the orphan too
    assert process.wait_gone(engine, 10) and jobs.status(run).state == jobs.STOPPED
    record2, handle2 = jobs.resume(run)  # now allowed, and only one trainer runs
    assert wait_until(lambda: (jobs.status(run).engine_pid or engine) != engine)
    assert jobs.stop_and_wait(run, timeout=30) == "stopped"
    assert handle2.wait(10) == 0


@posix_only
def test_stop_falls_back_to_killing_the_process_group(tmp_path, trainer, launcher):
    run = tmp_path / "run"
    record, handle = jobs.launch(run, "pretrain", launcher + [sys.executable, str(trainer)], ["pretrain", "--out",
                                                              str(run), "--total", "100000", "--ignore-stop"])
    assert wait_until(lambda: jobs.status(run).events.iteration >= 2)
    engine = engine_pid_of(run)
    assert jobs.stop(run)
    st = jobs.status(run)
    assert not jobs.enforce_stop_timeout(st, timeout=60)  # not overdue yet: nothing killed
    assert process.pid_alive(engine)
    assert jobs.enforce_stop_timeout(st, timeout=60, now=time.time() + 61)  # overdue: the group is killed
    handle.wait(10)
    assert process.wait_gone(engine, 10) and process.wait_gone(record.pid, 10)
    st = jobs.status(run)
    assert st.state == jobs.DIED and not st.active
    # the blocking variant does the same by itself after its timeout
    record, handle = jobs.launch(run, "pretrain", launcher + [sys.executable, str(trainer)], ["pretrain", "--out",
                                                              str(run), "--total", "100000", "--ignore-stop"])
    assert wait_until(lambda: jobs.status(run).engine_pid not in (None, engine))
    engine = jobs.status(run).engine_pid
    assert jobs.stop_and_wait(run, timeout=1.0) == "killed"
    assert process.wait_gone(engine, 10) and not jobs.status(run).active


def test_stop_timeout_grows_with_slow_iterations():
    state = EventState()
    assert jobs.stop_timeout(state) == jobs.STOP_TIMEOUT_S  # nothing known yet
    for it, t in ((1, 1000.0), (2, 1100.0), (3, 1200.0)):  # 100 s per iteration (a big crop on a CPU)
        state.apply({"time": t, "stage": "pretrain", "event": "progress", "iteration": it, "total": 10,
                     "losses": {"loss": 1.0}})
    # 200 s over three iterations seen: three iterations plus a minute
    assert jobs.stop_timeout(state) == pytest.approx(3 * 200.0 / 3 + 60.0)
    fast = EventState()
    for it in range(1, 50):
        fast.apply({"time": 1000.0 + 0.1 * it, "stage": "pretrain", "event": "progress", "iteration": it,
                    "total": 100, "losses": {"loss": 1.0}})
    assert jobs.stop_timeout(fast) == jobs.STOP_TIMEOUT_S


def test_windows_start_flags_give_a_group_and_no_console():
    flags = process.popen_group_kwargs(windows=True)["creationflags"]
    assert flags & 0x00000200 and flags & 0x08000000  # CREATE_NEW_PROCESS_GROUP, CREATE_NO_WINDOW
    assert not flags & 0x00000008  # not DETACHED_PROCESS: a console control event could never arrive
    if sys.platform.startswith("win"):
        import subprocess

        assert flags == subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.CREATE_NO_WINDOW
    assert process.popen_group_kwargs(windows=False) == {"start_new_session": True}


@posix_only
def test_died_job_and_kill(tmp_path, trainer):
    run = tmp_path / "run"
    record, handle = jobs.launch(run, "finetune", [sys.executable, str(trainer)], ["finetune", "--out", str(run),
                                                   "--total", "100000"])
    assert wait_until(lambda: jobs.status(run).events.iteration >= 1)
    assert jobs.kill(run)
    handle.wait(20)
    st = jobs.status(run)
    assert st.state == jobs.DIED and not st.active
    assert not jobs.stop(run) and not jobs.kill(run)


def test_status_without_registry_or_process(tmp_path):
    run = tmp_path / "cli-run"
    with EventWriter(run / "events.jsonl") as w:
        w.emit("finetune", "start", total=10)
        w.emit("finetune", "done", iteration=10, total=10)
    (run / "model").mkdir()
    (run / "model" / "model.json").write_text("{}")
    st = jobs.status(run)
    assert st.state == jobs.FINISHED and st.kind == "finetune" and st.record is None
    assert st.model_dir == run / "model"
    with pytest.raises(Exception, match="not started from Slicer"):
        jobs.resume(run)


def test_reused_pid_is_not_mistaken_for_the_job(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    own = process.process_start_time(os.getpid())
    record = jobs.JobRecord(str(run), "pretrain", ["x"], pid=os.getpid(),
                            process_start=None if own is None else str(int(own) + 1))
    (run / jobs.JOB_FILE).write_text(json.dumps(record.to_dict()))
    if own is not None:  # Linux: the start time tells the processes apart
        assert jobs.status(run).state == jobs.DIED
    assert not process.pid_alive(-1)


@posix_only
def test_the_record_keeps_the_device_and_how_to_resume(tmp_path, trainer):
    """The device is stored in the job record at launch and the resumed job runs on it, in its environment
    (before: the module parsed its own command line back for --device, and resumed without it)."""
    run = tmp_path / "run"
    prefix = [sys.executable, str(trainer)]
    record, handle = jobs.launch(run, "pretrain", prefix, ["pretrain", "--out", str(run), "--total", "100000",
                                                           "--device", "cpu"], device="cpu")
    assert wait_until(lambda: jobs.status(run).events.iteration >= 1)
    assert jobs.stop_and_wait(run, timeout=30) == "stopped" and handle.wait(20) == 0
    saved = jobs.read_record(run)
    assert saved.device == "cpu" and saved.prefix == prefix
    assert saved.resume == ["pretrain", "--device", "cpu", "--resume", str(run)]
    stopped_at = jobs.status(run).events.iteration
    record2, handle2 = jobs.resume(run)
    assert wait_until(lambda: jobs.status(run).events.iteration > stopped_at)  # the resumed trainer runs
    assert jobs.stop_and_wait(run, timeout=30) == "stopped" and handle2.wait(20) == 0
    assert record2.command == prefix + saved.resume and record2.device == "cpu" and record2.launches == 2
    assert jobs.read_record(run).resume == saved.resume  # a second resume continues the same way


def test_an_old_record_is_not_parsed_but_refused_with_the_command_to_use(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / jobs.JOB_FILE).write_text(json.dumps({"run_dir": str(run), "kind": "pretrain", "command": [
        "py", "-m", "voxmmsd", "pretrain", "--device", "cpu"], "pid": 0}))
    with pytest.raises(Exception, match="voxmmsd pretrain --resume"):
        jobs.resume(run)


def test_resume_arguments_are_accepted_by_the_engine(tmp_path, caplog):
    """The engine refuses --set with --resume; the resumed command must not carry it."""
    from voxmmsd.cli.main import main
    from VoxMMSDSegmentationLib import commands

    for kind, args in (("pretrain", commands.pretrain_arguments(commands.PretrainOptions(data="D",
                                                                                         out=str(tmp_path)))),
                       ("finetune", commands.finetune_arguments(commands.FinetuneOptions(data="D",
                                                                                         out=str(tmp_path))))):
        resumed = jobs.resume_arguments(kind, args, tmp_path, "cpu")
        assert "--set" not in resumed
        # no checkpoint there: the engine must fail on that, not on the arguments
        caplog.clear()
        assert main(resumed) == 1
        assert "last.pt" in caplog.text and "--set" not in caplog.text


def test_known_runs(tmp_path):
    known = jobs.KnownRuns(tmp_path / "home" / "runs.json")
    assert known.list() == []
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    known.add(a)
    known.add(b)
    known.add(a)
    assert known.list() == [b, a]
    assert [s.run_dir for s in known.statuses()] == [a]  # b does not exist
    known.remove(b)
    assert known.list() == [a]
    (tmp_path / "home" / "runs.json").write_text("garbage")
    assert known.list() == []
