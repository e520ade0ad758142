"""Parallel decoding of a case's sequences (voxmmsd.io.parallel, io.reader.read_sequences): the same images,
warnings and first error as reading them one after another."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from voxmmsd import synthetic
from voxmmsd.errors import InputError
from voxmmsd.io.discovery import SEQUENCE_NAMES, CaseFiles
from voxmmsd.io.parallel import map_ordered
from voxmmsd.io.reader import read_sequence, read_sequences


def test_map_ordered_keeps_order_and_uses_threads() -> None:
    seen = set()

    def slow(x: int) -> int:
        seen.add(threading.current_thread().name)
        time.sleep(0.05 * (4 - x))  # the last item finishes first
        return x * x

    assert map_ordered(slow, [0, 1, 2, 3]) == [0, 1, 4, 9]
    assert len(seen) > 1  # the calls ran in worker threads
    seen.clear()
    assert map_ordered(slow, [1, 2], workers=1) == [1, 4]
    assert seen == {threading.current_thread().name}


def test_map_ordered_raises_the_first_failure_in_order_after_all_ended() -> None:
    ended = []

    def f(x: int) -> int:
        if x == 1:
            time.sleep(0.1)  # fails last in time, first in order
            raise ValueError("one")
        if x == 2:
            raise KeyError("two")
        time.sleep(0.15)
        ended.append(x)
        return x

    with pytest.raises(ValueError, match="one"):
        map_ordered(f, [0, 1, 2, 3])
    assert sorted(ended) == [0, 3]  # nothing left running when the error came out


def test_read_sequences_equals_sequential(tmp_path: Path) -> None:
    paths = synthetic.write_case(tmp_path / "c", with_label=False)
    seqs = {s: paths[s] for s in ("t1n", "t1c", "t2w", "t2f")}
    present, par, warnings = read_sequences(CaseFiles("c", seqs))
    assert present == list(seqs) and list(par) == list(seqs)
    sequential = []
    for s, p in seqs.items():
        img, warn = read_sequence(p, SEQUENCE_NAMES[s])
        np.testing.assert_array_equal(sitk.GetArrayFromImage(par[s]), sitk.GetArrayFromImage(img))
        assert par[s].GetSpacing() == img.GetSpacing()
        sequential.extend(warn)
    assert warnings == sequential  # the same warnings, in channel order


def test_read_sequences_error_names_the_first_bad_file(tmp_path: Path) -> None:
    paths = synthetic.write_case(tmp_path / "c", with_label=False)
    (tmp_path / "bad_t2w.nii.gz").write_bytes(b"not an image")
    (tmp_path / "bad_t2f.nii.gz").write_bytes(b"not an image either")
    seqs = {"t1n": paths["t1n"], "t1c": paths["t1c"], "t2w": tmp_path / "bad_t2w.nii.gz",
            "t2f": tmp_path / "bad_t2f.nii.gz"}
    with pytest.raises(InputError, match="bad_t2w"):
        read_sequences(CaseFiles("c", seqs))
