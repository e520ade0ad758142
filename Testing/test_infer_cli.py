"""``voxmmsd segment`` end to end: outputs and events, batch mode, bad input, and no PyTorch at all."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from support.packages import build_tiny_package
from voxmmsd import synthetic
from voxmmsd.cli.main import main


@pytest.fixture(scope="module")
def pkg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_package(tmp_path_factory.mktemp("pkg") / "tiny")


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("case") / "c1"
    geom = synthetic.default_geometry((40, 48, 32), spacing=(0.9, 1.0, 1.5),
                                      direction=synthetic.rotation(1, 20).ravel())
    synthetic.write_case(folder, "c1", seed=5, geometry=geom)
    return folder


def test_segment_single_case_with_json_progress(pkg: Path, case: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    rc = main(["segment", str(case), "--out", str(out), "--model", str(pkg), "--backend", "onnx",
               "--progress", "json", "--min-component-ml", "0.01"])
    assert rc == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert events[0]["event"] == "start" and events[-1]["event"] == "done"
    assert {e["stage"] for e in events if e["event"] != "progress"} == {"segment"}
    stages = ["read", "check", "preprocess", "predict", "postprocess", "write"]  # progress names its stage
    assert {e["stage"] for e in events if e["event"] == "progress"} <= set(stages) | {"segment"}
    assert Path(events[-1]["outputs"]["segmentation"]).is_file()
    report = json.loads((out / "report.json").read_text())
    assert report["model"] == {"id": "tiny", "version": "0.1"} and report["case_id"] == "c1"
    assert {"read", "inference", "write"} <= set(report["timings_s"])
    ref = sitk.ReadImage(str(case / "c1-t1c.nii.gz"))
    seg = sitk.ReadImage(str(out / "segmentation.nii.gz"))
    assert seg.GetSize() == ref.GetSize() and seg.GetDirection() == pytest.approx(ref.GetDirection())
    assert seg.GetOrigin() == pytest.approx(ref.GetOrigin()) and seg.GetSpacing() == pytest.approx(ref.GetSpacing())


def test_explicit_paths_and_legacy_labels(pkg: Path, case: Path, tmp_path: Path) -> None:
    args = ["segment", "--out", str(tmp_path / "o"), "--model", str(pkg), "--backend", "onnx", "--labels", "legacy",
            "--no-qc"]
    for key in ("t1n", "t1c", "t2w", "t2f"):
        args += [f"--{key}", str(case / f"c1-{key}.nii.gz")]
    assert main(args) == 0
    values = set(np.unique(sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "o" / "segmentation.nii.gz")))))
    assert values <= {0, 1, 2, 4} and not (tmp_path / "o" / "qc.png").exists()


def test_unwritable_output_gives_a_clear_message_and_writes_nothing(pkg: Path, case: Path, tmp_path: Path,
                                                                    caplog) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    rc = main(["segment", str(case), "--out", str(blocker / "out"), "--model", str(pkg), "--backend", "onnx"])
    assert rc == 1 and "Cannot create output folder" in caplog.text
    if os.geteuid() != 0:  # root ignores permissions
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        try:
            assert main(["segment", str(case), "--out", str(ro), "--model", str(pkg), "--backend", "onnx"]) == 1
            assert "No permission to write" in caplog.text and list(ro.iterdir()) == []
        finally:
            ro.chmod(0o755)


def test_tampered_and_unknown_models_are_refused(pkg: Path, case: Path, tmp_path: Path, caplog,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(pkg, bad)
    with open(bad / "model.onnx", "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01\x02")
    out = tmp_path / "out"
    assert main(["segment", str(case), "--out", str(out), "--model", str(bad)]) == 1
    assert "tampered" in caplog.text and not out.exists()  # the folder made for the result goes again
    monkeypatch.setenv("VOXMMSD_HOME", str(tmp_path / "home"))
    assert main(["segment", str(case), "--out", str(out), "--model", "nope-model"]) == 1
    assert "Unknown model 'nope-model'" in caplog.text


def test_missing_sequence_refused(pkg: Path, case: Path, tmp_path: Path, caplog) -> None:
    args = ["segment", "--out", str(tmp_path / "o"), "--model", str(pkg), "--backend", "onnx"]
    for key in ("t1n", "t1c", "t2w"):
        args += [f"--{key}", str(case / f"c1-{key}.nii.gz")]
    assert main(args) == 1
    assert "T2-FLAIR" in caplog.text and not (tmp_path / "o" / "segmentation.nii.gz").exists()


def test_batch_skips_done_reports_bad_cases_and_shards(pkg: Path, tmp_path: Path) -> None:
    data = synthetic.write_dataset(tmp_path / "data", n=3, geometry=synthetic.default_geometry((32, 40, 28)))
    (data / "case001" / "case001-t1c.nii.gz").write_bytes(b"not an image")  # a bad case
    out = tmp_path / "out"
    base = ["segment", "--batch", str(data), "--out", str(out), "--model", str(pkg), "--backend", "onnx",
            "--progress", "none", "--no-qc"]
    assert main(base) == 1  # one case failed
    rows = {r["case_id"]: r for r in csv.DictReader(open(out / "summary.csv"))}
    assert rows["case000"]["status"] == "done" and rows["case002"]["status"] == "done"
    assert rows["case001"]["status"] == "failed" and "case001-t1c" in rows["case001"]["error"]
    assert float(rows["case000"]["WT_ml"]) >= 0 and not (out / "case001").exists()
    stamp = (out / "case000" / "report.json").stat().st_mtime_ns
    synthetic.write_case(data / "case001", "case001", seed=1, geometry=synthetic.default_geometry((32, 40, 28)))
    assert main(base) == 0
    rows = {r["case_id"]: r for r in csv.DictReader(open(out / "summary.csv"))}
    assert [rows[c]["status"] for c in ("case000", "case001", "case002")] == ["skipped", "done", "skipped"]
    assert (out / "case000" / "report.json").stat().st_mtime_ns == stamp
    shard_out = tmp_path / "sharded"
    assert main(base[:4] + [str(shard_out)] + base[5:] + ["--shard", "1/2"]) == 0
    assert sorted(p.name for p in shard_out.iterdir() if p.is_dir()) == ["case001"]
    assert (shard_out / "summary.shard-1-of-2.csv").is_file()


def test_torchrun_splits_a_batch_across_processes(pkg: Path, tmp_path: Path) -> None:
    """Two real torchrun processes each take their shard (RANK/WORLD_SIZE) of a three-case batch."""
    data = synthetic.write_dataset(tmp_path / "data", n=3, geometry=synthetic.default_geometry((32, 40, 28)))
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
                          "0", "-m", "voxmmsd", "segment", "--batch", str(data), "--out", str(out), "--model",
                          str(pkg), "--device", "cpu", "--progress", "none", "--no-qc"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    shards = {}
    for i in (0, 1):
        rows = list(csv.DictReader(open(out / f"summary.shard-{i}-of-2.csv")))
        shards[i] = sorted(r["case_id"] for r in rows if r["status"] == "done")
    assert shards == {0: ["case000", "case002"], 1: ["case001"]}
    assert all((out / c / "report.json").is_file() for c in ("case000", "case001", "case002"))


BLOCK_TORCH = textwrap.dedent("""
    import sys
    class _NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch.") or name in ("monai", "safetensors"):
                raise ModuleNotFoundError("No module named " + repr(name))
            return None
    sys.meta_path.insert(0, _NoTorch())
    from voxmmsd.cli.main import main
    rc = main(sys.argv[1:])
    assert "torch" not in sys.modules, "torch was imported"
    sys.exit(rc)
""")


def test_segment_runs_without_pytorch(pkg: Path, case: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = subprocess.run([sys.executable, "-c", BLOCK_TORCH, "segment", str(case), "--out", str(out),
                          "--model", str(pkg), "--progress", "json"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert report["run"]["backend"] == "onnx"
    res = subprocess.run([sys.executable, "-c", BLOCK_TORCH, "segment", str(case), "--out", str(out),
                          "--model", str(pkg), "--backend", "torch", "--overwrite"], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 1 and "PyTorch is not installed" in res.stderr


def test_models_cli(pkg: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("VOXMMSD_HOME", str(tmp_path / "home"))
    assert main(["models", "import", str(pkg)]) == 0
    assert main(["models", "list"]) == 0
    assert "tiny@0.1" in capsys.readouterr().out
    assert main(["models", "verify"]) == 0
    assert main(["models", "verify", "tiny"]) == 0
    assert main(["models", "remove", "tiny"]) == 0
    assert main(["models", "remove", "tiny"]) == 1


def test_export_cli_from_a_pymic_checkpoint(tmp_path: Path) -> None:
    import torch
    from support.packages import tiny_state
    from voxmmsd.models.package import load_package
    from voxmmsd.nets.weights import to_pymic_checkpoint

    state, cfg = tiny_state(1)
    torch.save(to_pymic_checkpoint(state, 100), tmp_path / "ckpt.pt")
    assert main(["export", str(tmp_path / "ckpt.pt"), "--out", str(tmp_path / "pkg"), "--id", "from-pymic",
                 "--channels", *[str(c) for c in cfg.channels]]) == 0
    p = load_package(tmp_path / "pkg")
    assert p.id == "from-pymic" and p.onnx_path is not None and p.unet_config().channels == cfg.channels
