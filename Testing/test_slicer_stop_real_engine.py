"""Stop with the REAL trainer behind a PythonSlicer-like launcher (starts the interpreter as a child,
forwards no signal): ``voxmmsd pretrain`` on two synthetic cases with a tiny network. The Slicer
side writes the stop file; the engine checkpoints, emits ``stopped`` and releases its lock; while
it runs, its lock keeps Resume from starting a second trainer."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("torch")

MODULE_DIR = Path(__file__).resolve().parents[1] / "VoxMMSDSegmentation"
if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))

from support.waiting import wait_until  # noqa: E402
from voxmmsd import synthetic  # noqa: E402
from voxmmsd.errors import InputError  # noqa: E402
from VoxMMSDSegmentationLib import commands, jobs, process  # noqa: E402

posix_only = pytest.mark.skipif(sys.platform.startswith("win"), reason="POSIX launcher stand-in")

LAUNCHER = textwrap.dedent("""
    import subprocess, sys
    child = subprocess.Popen(sys.argv[1:])  # like PythonSlicer: a child, and no signal forwarding
    sys.exit(child.wait())
""")

TINY = ["network.channels=4,8,16,32,64", "data.patch_size=32,32,32", "method.block_size=8", "method.n_pairs=128",
        "method.out_dim=32", "data.workers=0", "train.log_every=1", "train.checkpoint_every=1000"]




@pytest.mark.slow  # ~25 s on 2 cores; the default run covers the launcher with the trainer double
@posix_only
def test_real_pretraining_stops_through_the_launcher(tmp_path):
    data = synthetic.write_dataset(tmp_path / "data", n=2)
    run = tmp_path / "run"
    (tmp_path / "launcher.py").write_text(LAUNCHER)
    args = commands.pretrain_arguments(commands.PretrainOptions(data=str(data), out=str(run), iterations=100000,
                                                                crop_size=(32, 32, 32), device="cpu"))
    args += ["--cache", str(tmp_path / "cache"), "--no-progress"] + [x for s in TINY for x in ("--set", s)]
    prefix = [sys.executable, str(tmp_path / "launcher.py")] + process.engine_command([])
    env = dict(os.environ, OMP_NUM_THREADS="1")
    record, handle = jobs.launch(run, "pretrain", prefix, args, env, device="cpu")
    def training(at_least: int) -> bool:
        events = jobs.status(run).events
        return events.stage == "pretrain" and len(events.history) >= at_least

    assert wait_until(lambda: training(2), timeout=120, interval=0.1), (run / jobs.OUTPUT_FILE).read_text()[-3000:]
    st = jobs.status(run)
    assert st.state == jobs.RUNNING and st.engine_pid not in (None, record.pid)  # the lock names the interpreter
    engine = st.engine_pid
    with pytest.raises(InputError, match="still running"):
        jobs.resume(run)  # never a second trainer
    assert jobs.stop(run)
    assert handle.wait(120) == 0, (run / jobs.OUTPUT_FILE).read_text()[-3000:]
    assert process.wait_gone(engine, 20)
    st = jobs.status(run)
    assert st.state == jobs.STOPPED and st.resumable and st.engine_pid is None
    assert st.events.outcome == "stopped" and 2 <= st.events.iteration < 100000
    assert (run / "checkpoints" / "last.pt").is_file()
