"""Faults around results: never replaced silently, and a batch that never aborts on one case. Registered in
:data:`support.reliability.FAULTS` on import."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import List

from support.reliability import Env, _batch, _sha_of_tree, fault

# -- 2. never replace silently ----------------------------------------------------------------------

@fault("outputs", "kept")
def existing_result_not_overwritten(env: Env) -> None:
    assert env.segment() == 0
    before = _sha_of_tree(env.tmp / "out")
    env.refused(env.segment("--no-qc"), "already holds a result", "--overwrite")
    env.kept(before, _sha_of_tree(env.tmp / "out"))


@fault("outputs", "cleaned")
def overwrite_leaves_no_stale_file(env: Env) -> None:
    assert env.segment() == 0 and (env.tmp / "out" / "qc.png").is_file()
    assert env.segment("--no-qc", "--overwrite") == 0
    names = sorted(p.name for p in (env.tmp / "out").iterdir())
    assert names == ["report.json", "segmentation.nii.gz", "segmentation.seg.nrrd"]
    env.cleaned(env.tmp / "out" / "qc.png")


@fault("outputs", "refused")
def second_writer_on_the_same_folder(env: Env) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        out = env.tmp / "out"
        out.mkdir()
        (out / ".voxmmsd.lock").write_text(json.dumps({"pid": sleeper.pid, "host": socket.gethostname(),
                                                       "purpose": "segmentation", "started": "now"}))
        env.refused(env.segment(), "in use by another VoxMMSD process", str(sleeper.pid))
        assert not (out / "report.json").exists()
    finally:
        sleeper.kill()
        sleeper.wait()


@fault("leftovers", "cleaned")
def stale_staging_folder_removed(env: Env) -> None:
    stale = env.tmp / "out" / ".staging-crashed"
    stale.mkdir(parents=True)
    (stale / "segmentation.nii.gz").write_bytes(b"half")
    assert env.segment() == 0
    assert (env.tmp / "out" / "report.json").is_file()
    env.cleaned(stale)


@fault("leftovers", "cleaned")
def unfinished_result_replaced(env: Env) -> None:
    import voxmmsd.infer.outputs as outputs

    out = env.tmp / "out"
    assert env.segment() == 0
    moved: List[str] = []
    real_replace = os.replace

    def killed_after_one(src, dst):  # SIGTERM (real, to this process) while the new files are moved in
        real_replace(src, dst)
        if not Path(src).parent.name.startswith(".staging-") or Path(dst).parent.name.startswith(".staging-"):
            return  # (os.replace is also every atomic write's: the writing marker, each file inside the staging)
        moved.append(str(dst))
        if len(moved) == 1:
            os.kill(os.getpid(), signal.SIGTERM)

    env.monkeypatch.setattr(outputs.os, "replace", killed_after_one)
    assert env.segment("--overwrite") == 128 + signal.SIGTERM
    env.monkeypatch.setattr(outputs.os, "replace", real_replace)
    assert not (out / "report.json").exists() and (out / "qc.png").exists()  # half old, half new
    assert env.segment("--no-qc") == 0  # that unfinished result of ours: replaced, with a warning
    assert "unfinished result" in env.caplog.text
    assert sorted(p.name for p in out.iterdir()) == ["report.json", "segmentation.nii.gz", "segmentation.seg.nrrd"]
    env.cleaned(out / "qc.png", out / ".voxmmsd-writing.json")


@fault("leftovers", "cleaned")
def no_empty_output_folder_after_failure(env: Env) -> None:
    env.seq("t1c").write_bytes(b"not an image")
    env.refused(env.segment(), "c-t1c.nii.gz")
    env.cleaned(env.tmp / "out")


@fault("outputs", "refused")
def disk_too_full_before_compute(env: Env) -> None:
    import voxmmsd.infer.outputs as outputs
    import voxmmsd.infer.predictor as predictor

    real = shutil.disk_usage

    def full(path):
        u = real(path)
        return type(u)(u.total, u.total - 1000, 1000)

    def no_backend(*a, **k):
        raise AssertionError("compute started although the disk is full")

    env.monkeypatch.setattr(outputs.shutil, "disk_usage", full)
    env.monkeypatch.setattr(predictor, "create_backend", no_backend)
    env.refused(env.segment(), "Not enough disk space", "MB needed")


@fault("outputs", "kept")
def disk_full_while_writing(env: Env) -> None:
    import voxmmsd.infer.outputs as outputs

    assert env.segment() == 0
    before = _sha_of_tree(env.tmp / "out")

    def enospc(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    env.monkeypatch.setattr(outputs, "write_seg_nrrd", enospc)
    env.refused(env.segment("--overwrite"), "disk is full", "about")
    env.kept(before, _sha_of_tree(env.tmp / "out"))  # the previous result is intact


# -- 3. batch: never abort on one case ---------------------------------------------------------------


@fault("batch", "listed")
def batch_case_with_two_flairs(env: Env) -> None:
    b = _batch(env)
    assert b["rc"] == 1
    env.listed(b["rows"]["case001"][0], "More than one T2-FLAIR")
    assert b["rows"]["case000"][0]["status"] == "done"  # the others ran


@fault("batch", "listed")
def batch_empty_case_folder(env: Env) -> None:
    env.listed(_batch(env)["rows"]["empty_case"][0], "holds no image")
    assert len(_batch(env)["rows"]["case000"]) == 2  # (__MACOSX/case000 is not a case folder)


@fault("batch", "listed")
def batch_case_folder_too_deep(env: Env) -> None:
    env.listed(_batch(env)["rows"]["scanner"][0], "two levels deep")


@fault("batch", "listed")
def batch_two_cases_with_one_id(env: Env) -> None:
    rows = _batch(env)["rows"]["case000"]
    assert rows[0]["status"] == "done"
    env.listed(rows[1], "Rename one")


@fault("batch", "listed")
def batch_unreadable_case(env: Env) -> None:
    env.listed(_batch(env)["rows"]["broken"][0], "broken-t1c.nii.gz")
    assert not (Path(str(_batch(env)["out"])) / "broken").exists()  # no empty folder left


