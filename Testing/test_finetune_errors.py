"""Bad input to `voxmmsd finetune` gets a clear message (exit code 1, no traceback)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from support.training import set_args
from voxmmsd import synthetic
from voxmmsd.cli.main import main


def _run(args, caplog) -> str:
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="voxmmsd"):
        rc = main(["finetune"] + [str(a) for a in args])
    assert rc == 1
    return caplog.text


def _relabel(path: Path, value_from: int, value_to: int) -> None:
    img = sitk.ReadImage(str(path))
    arr = sitk.GetArrayFromImage(img)
    arr[arr == value_from] = value_to
    out = sitk.GetImageFromArray(arr.astype(np.uint8))
    out.CopyInformation(img)
    sitk.WriteImage(out, str(path))


def test_empty_folder(tmp_path: Path, caplog) -> None:
    (tmp_path / "empty").mkdir()
    text = _run(["--data", tmp_path / "empty", "--out", tmp_path / "run"], caplog)
    assert "No cases found" in text and str(tmp_path / "empty") in text


def test_missing_folder_and_arguments(tmp_path: Path, caplog) -> None:
    assert "not found" in _run(["--data", tmp_path / "nope", "--out", tmp_path / "run"], caplog)
    assert "--out RUN" in _run(["--data", tmp_path], caplog)
    assert "no checkpoints/last.pt" in _run(["--resume", tmp_path], caplog)


def test_unlabelled_and_incomplete_cases(tmp_path: Path, caplog) -> None:
    data = synthetic.write_dataset(tmp_path / "d", n=3)
    (data / "case001" / "case001-seg.nii.gz").unlink()
    text = _run(["--data", data, "--out", tmp_path / "r1"], caplog)
    assert "no label map" in text and "case001" in text
    synthetic.write_case(data / "case001", "case001", seed=1)
    (data / "case002" / "case002-t2f.nii.gz").unlink()
    text = _run(["--data", data, "--out", tmp_path / "r2"], caplog)
    assert "case002" in text and "T2-FLAIR" in text


def test_training_list_names_missing_cases(synthetic_dataset: Path, tmp_path: Path, caplog) -> None:
    text = _run(["--data", synthetic_dataset, "--out", tmp_path / "run", "--train", "case000,case999"], caplog)
    assert "case999" in text and "not in the data set" in text


def test_labels_outside_the_convention(tmp_path: Path, caplog) -> None:
    data = synthetic.write_dataset(tmp_path / "d", n=2)  # BraTS 2023 labels: 1, 2, 3
    text = _run(["--data", data, "--out", tmp_path / "r1", "--labels", "legacy"] + set_args(), caplog)
    assert "[3]" in text and "legacy convention" in text and "-seg.nii.gz" in text
    _relabel(data / "case000" / "case000-seg.nii.gz", 2, 7)
    text = _run(["--data", data, "--out", tmp_path / "r2"] + set_args(), caplog)
    assert "7" in text and "case000-seg.nii.gz" in text


def test_resection_cavity_needs_a_fifth_output(tmp_path: Path, caplog) -> None:
    data = synthetic.write_dataset(tmp_path / "d", n=2)
    _relabel(data / "case001" / "case001-seg.nii.gz", 1, 4)
    text = _run(["--data", data, "--out", tmp_path / "r", "--labels", "brats2023"] + set_args(), caplog)
    assert "network.num_classes=5" in text and "case001" in text


def test_existing_run_is_not_overwritten(tmp_path: Path, caplog) -> None:
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "last.pt").write_bytes(b"x")
    text = _run(["--data", tmp_path, "--out", tmp_path / "run"], caplog)
    assert "--resume" in text


@pytest.mark.parametrize("bad", ["data.patch_size=[20,32,32]", "train.lrr=1"])
def test_bad_settings(tmp_path: Path, caplog, bad: str) -> None:
    assert bad.split("=")[0].split(".")[1][:4] in _run(["--data", tmp_path, "--out", tmp_path / "r", "--set", bad],
                                                        caplog)
