"""Faults at run time: training input, signals, security, determinism. Registered in
:data:`support.reliability.FAULTS` on import."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import List

import numpy as np
import pytest
import SimpleITK as sitk
from voxmmsd import synthetic
from voxmmsd.cli.main import main
from voxmmsd.errors import InputError

from support.faults_models import _catalog
from support.reliability import GEOM, Env, _batch, _labelled, _read, _sha_of_tree, _tolerant, fault
from support.waiting import wait_until

# -- 7. training input ----------------------------------------------------------------------------------


def _cache(env: Env, data: Path, labels: str = "auto") -> None:
    from voxmmsd.data.cache import build_cache
    from voxmmsd.io.discovery import find_dataset
    from voxmmsd.preprocessing import PreprocessConfig

    build_cache(find_dataset(data), env.tmp / "cache", PreprocessConfig(), labels, show_progress=False)


@fault("training", "refused")
def label_shifted_12mm(env: Env) -> None:
    data = _labelled(env)
    p = data / "case001" / "case001-seg.nii.gz"
    img = sitk.ReadImage(str(p))
    img.SetOrigin(tuple(o + d for o, d in zip(img.GetOrigin(), (12.0, 0.0, 0.0))))
    sitk.WriteImage(img, str(p), True)
    with env.raises(InputError, r"case001-seg\.nii\.gz is not on the grid of any of the case's images.*12\.0 mm"):
        _cache(env, data)


@fault("training", "refused")
def all_labels_empty(env: Env) -> None:
    from voxmmsd.errors import LabelError
    from voxmmsd.finetune.config import FinetuneConfig
    from voxmmsd.finetune.prepare import prepare_cases
    from voxmmsd.jobs.distributed import DistInfo

    data = _labelled(env)
    for p in data.rglob("*-seg.nii.gz"):
        img = sitk.ReadImage(str(p))
        env.write("t1c", np.zeros(sitk.GetArrayFromImage(img).shape, np.uint8), img, p)
    with env.raises(LabelError, "Every label map of the 2 case"):
        prepare_cases(data, FinetuneConfig(), env.tmp / "run", DistInfo())


@fault("training", "refused")
def cohort_of_its_own_predictions(env: Env) -> None:
    from voxmmsd.io.discovery import find_dataset

    data = synthetic.write_dataset(env.tmp / "cohort", n=1, geometry=GEOM, with_label=False)
    assert env.segment(case=data / "case000", out=env.tmp / "pred") == 0
    for p in (env.tmp / "pred").iterdir():  # the tool's result beside the images, no reference label
        shutil.copyfile(p, data / "case000" / p.name)
    with env.raises(InputError, "have no label map"):
        find_dataset(data, require_labels=True)


@fault("training", "refused")
def resume_with_another_network(env: Env) -> None:
    from voxmmsd.finetune.config import load_config
    from voxmmsd.jobs.checkpoint import save_checkpoint
    from voxmmsd.jobs.run_folder import RunFolder

    run = RunFolder(env.tmp / "run")
    cfg = load_config(None, ["network.channels=[4,8,16,32,64]"], {"data": {"root": str(_labelled(env))}})
    save_checkpoint({"config": cfg.to_dict(), "iteration": 1}, run.last_checkpoint)  # what a stopped run leaves
    rc = main(["finetune", "--resume", str(run.root), "--set", "network.channels=[8,16,32,64,128]",
               "--allow-changed-settings"])
    env.refused(rc, "cannot change the network", "network.channels", "start a new run")


@fault("training", "kept")
def new_run_over_an_earlier_model(env: Env) -> None:
    run = env.tmp / "run"
    shutil.copytree(env.pkg, run / "model")  # an earlier run's package; its checkpoints were deleted
    before = _sha_of_tree(run / "model")
    rc = main(["finetune", "--data", str(_labelled(env)), "--out", str(run), "--max-iters", "1"])
    env.refused(rc, "from an earlier run", "another --out")
    env.kept(before, _sha_of_tree(run / "model"))


@fault("training", "refused")
def legacy_labels_3_and_4_mixed(env: Env) -> None:
    from voxmmsd.errors import LabelError

    data = _labelled(env, n=1)
    p = data / "case000" / "case000-seg.nii.gz"
    img = sitk.ReadImage(str(p))
    lab = sitk.GetArrayFromImage(img)
    lab[lab == 1] = 4  # BraTS 2015 style: 1..4 with 4 the enhancing tumour, next to a 3
    env.write("t1c", lab, img, p)
    with env.raises(LabelError, r"3 and 4 together.*--labels brats2023.*relabel 3 as 1 and give --labels legacy"):
        _cache(env, data)


# -- 8. signals: real signals, the one handler --------------------------------------------------------

def _cli(*args: str) -> List[str]:
    return [sys.executable, "-m", "voxmmsd", *args]


def _no_leftovers(env: Env, folder: Path) -> None:
    env.cleaned(*folder.rglob(".voxmmsd.lock"), *folder.rglob(".staging-*"), *folder.rglob(".*.tmp*"))


@fault("signals", "cleaned")
def sigterm_while_reading(env: Env) -> None:
    out = env.tmp / "out"
    proc = subprocess.Popen(_cli("segment", str(env.case), "--out", str(out), "--model", str(env.pkg), "--backend",
                                 "onnx", "--progress", "none"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert wait_until((out / ".voxmmsd.lock").exists, timeout=300, interval=0.005, proc=proc)  # the output folder
    # is claimed: the images are read next
    proc.send_signal(signal.SIGTERM)
    text = proc.communicate(timeout=300)[0].decode()
    assert proc.returncode == 128 + signal.SIGTERM, text
    assert "Traceback" not in text and "SIGTERM" in text
    env.cleaned(out)  # the folder it created, lock included


@fault("signals", "cleaned")
def sigterm_while_predicting(env: Env) -> None:
    from voxmmsd.infer import window

    real = window.whole

    def terminated(*a, **k):  # a real SIGTERM to this process while the network runs
        os.kill(os.getpid(), signal.SIGTERM)
        return real(*a, **k)

    env.monkeypatch.setattr(window, "whole", terminated)
    assert env.segment() == 128 + signal.SIGTERM
    env.cleaned(env.tmp / "out")


@fault("signals", "cleaned")
def sigterm_while_writing(env: Env) -> None:
    import voxmmsd.infer.outputs as outputs

    assert env.segment() == 0
    before = _sha_of_tree(env.tmp / "out")
    real = outputs.write_seg_nrrd

    def terminated(*a, **k):
        os.kill(os.getpid(), signal.SIGTERM)
        return real(*a, **k)

    env.monkeypatch.setattr(outputs, "write_seg_nrrd", terminated)
    assert env.segment("--overwrite") == 128 + signal.SIGTERM
    assert _sha_of_tree(env.tmp / "out") == before  # the previous result is untouched
    _no_leftovers(env, env.tmp / "out")


@fault("signals", "listed")
def sigterm_during_a_batch(env: Env) -> None:
    import csv

    data = synthetic.write_dataset(env.tmp / "cohort", n=5, geometry=GEOM, with_label=False)
    out = env.tmp / "out"
    proc = subprocess.Popen(_cli("segment", "--batch", str(data), "--out", str(out), "--model", str(env.pkg),
                                 "--backend", "onnx", "--progress", "none", "--no-qc"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert wait_until((out / "case000" / "report.json").exists, timeout=300, interval=0.005, proc=proc)
    proc.send_signal(signal.SIGTERM)
    text = proc.communicate(timeout=300)[0].decode()
    assert proc.returncode == 128 + signal.SIGTERM, text
    with open(out / "summary.csv", newline="") as f:
        rows = {r["case_id"]: r for r in csv.DictReader(f)}
    assert rows["case000"]["status"] == "done" and len(rows) == 5
    env.listed(rows["case004"], "interrupted (SIGTERM)", "run the same command again", status="interrupted")
    _no_leftovers(env, out)


@fault("signals", "listed")
def sigterm_after_a_case_was_written(env: Env) -> None:
    import csv

    from voxmmsd.io.results import WRITING

    data = synthetic.write_dataset(env.tmp / "cohort", n=2, geometry=GEOM, with_label=False)
    real_remove = os.remove

    def terminated(path, *a, **k):  # a real SIGTERM once case000's files are all in place, before its lock is freed
        real_remove(path, *a, **k)
        if Path(path).name == WRITING:
            os.kill(os.getpid(), signal.SIGTERM)

    env.monkeypatch.setattr(os, "remove", terminated)
    assert env.segment("--batch", str(data), "--no-qc") == 128 + signal.SIGTERM
    env.monkeypatch.setattr(os, "remove", real_remove)
    with open(env.tmp / "out" / "summary.csv", newline="") as f:
        rows = {r["case_id"]: r for r in csv.DictReader(f)}
    assert rows["case000"]["status"] == "done" and (env.tmp / "out" / "case000" / "report.json").is_file()
    env.listed(rows["case001"], "not started", status="interrupted")
    _no_leftovers(env, env.tmp / "out")


# -- 9. security ----------------------------------------------------------------------------------------

@fault("security", "ignored")
def catalog_archive_with_mode_4777(env: Env) -> None:
    import tarfile

    archive = env.tmp / "tiny-0.1.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        for p in [env.pkg, *sorted(env.pkg.iterdir())]:
            info = t.gettarinfo(str(p), arcname=str(Path("tiny") / p.relative_to(env.pkg)) if p != env.pkg else "tiny")
            info.mode = 0o4777  # setuid, world-writable: model.json holds the checksums
            if info.isfile():
                with open(p, "rb") as f:
                    t.addfile(info, f)
            else:
                t.addfile(info)
    _catalog(env, "0.1", url=archive.as_uri())
    res = env.tmp / "resources"
    entry = json.loads((res / "catalog.json").read_text())
    entry["models"][0].update(size=archive.stat().st_size, sha256=hashlib.sha256(archive.read_bytes()).hexdigest(),
                              url=archive.as_uri())
    (res / "catalog.json").write_text(json.dumps(entry))
    assert main(["models", "install", "tiny"]) == 0
    installed = env.home / "models" / "tiny" / "0.1"
    modes = {p.name: p.stat().st_mode & 0o7777 for p in [installed, *installed.iterdir()]}
    env.ignored(modes == {"0.1": 0o755, "model.json": 0o644, "model.onnx": 0o644, "weights.safetensors": 0o644},
                f"the archive's modes were applied: {modes}")


@fault("security", "escaped")
def formula_in_case_ids(env: Env) -> None:
    out = Path(str(_batch(env)["out"]))
    cells = [line.split(",", 1)[0] for line in (out / "summary.csv").read_text().splitlines()[1:]]
    formulas = sorted(c for c in cells if c.startswith("'"))
    env.escaped(formulas, sorted(["=2+5", "@SUM(1+1)"]))
    assert (out / "=2+5" / "report.json").is_file()  # the case itself was segmented


# -- 10. determinism: the same exam, the same answer ----------------------------------------------------

@fault("determinism", "same")
def registration_twice_same_transform(env: Env) -> None:
    from voxmmsd.exam import register as reg

    g = synthetic.default_geometry((64, 72, 56), spacing=(2.0, 2.0, 2.0))
    ph = synthetic.random_phantom(3)
    fixed = g.apply(sitk.GetImageFromArray(synthetic.sample_sequence(ph, g, "t1c", seed=1)))
    moved = synthetic.default_geometry((60, 70, 30), spacing=(2.0, 2.0, 4.0),
                                       direction=tuple((synthetic.rotation(0, 4.0)).ravel()))
    moving = moved.apply(sitk.GetImageFromArray(synthetic.sample_sequence(ph, moved, "t2w", seed=2)))
    runs = [reg.register_rigid(fixed, moving, "T2w", "T1c").transform.GetParameters() for _ in range(2)]
    env.same(np.asarray(runs[0]), np.asarray(runs[1]))


@fault("determinism", "same", slow=True)
def raw_exam_twice_same_labels(env: Env) -> None:
    pytest.importorskip("deepbet")
    from support.exams import write_raw_exam

    exam = write_raw_exam(env.tmp / "raw")
    for k in (1, 2):  # the same command twice
        assert main(["segment", str(exam), "--out", str(env.tmp / f"run{k}"), "--model", str(_tolerant(env)),
                     "--progress", "none", "--no-qc"]) == 0
    reports = [json.loads((env.tmp / f"run{k}" / "report.json").read_text()) for k in (1, 2)]
    assert reports[0]["inputs"]["preparation"]["registration"] == reports[1]["inputs"]["preparation"]["registration"]
    assert np.array_equal(_read(env.tmp / "run1" / "brain_mask.nii.gz"), _read(env.tmp / "run2" / "brain_mask.nii.gz"))
    env.same(_read(env.tmp / "run1" / "segmentation.nii.gz"), _read(env.tmp / "run2" / "segmentation.nii.gz"))


