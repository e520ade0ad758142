"""The reliability table's machinery: a :class:`Fault` entry, the registry :data:`FAULTS` that the
:func:`fault` decorator fills, and the :class:`Env` helper through which each fault checks its outcome
(``Testing/test_reliability.py`` runs the table; the faults live in ``support/faults_*.py`` by area)."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Sequence, Set

import numpy as np
import pytest
import SimpleITK as sitk
from voxmmsd import synthetic
from voxmmsd.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
GEOM = synthetic.default_geometry((32, 40, 28))


OUTCOMES = ("refused", "warned", "kept", "listed", "cleaned", "same", "ignored", "escaped")


@dataclass(frozen=True)
class Fault:
    name: str
    area: str
    outcome: str  # one of OUTCOMES
    run: Callable[["Env"], None]
    slow: bool = False


FAULTS: List[Fault] = []


def fault(area: str, outcome: str, slow: bool = False) -> Callable[[Callable[["Env"], None]], Callable[["Env"], None]]:
    assert outcome in OUTCOMES, outcome

    def register(fn: Callable[["Env"], None]) -> Callable[["Env"], None]:
        FAULTS.append(Fault(fn.__name__, area, outcome, fn, slow))
        return fn
    return register


class Env:
    """One fault's sandbox: a fresh synthetic case, the tiny package, a cache home, the captured log."""

    def __init__(self, tmp: Path, pkg: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch):
        self.tmp, self.pkg, self.caplog, self.monkeypatch = tmp, pkg, caplog, monkeypatch
        self.home = tmp / "home"
        monkeypatch.setenv("VOXMMSD_HOME", str(self.home))
        self._case = None
        self.checked: Set[str] = set()  # the outcomes this fault asserted

    @property
    def case(self) -> Path:
        if self._case is None:
            self._case = self.tmp / "c"
            synthetic.write_case(self._case, "c", seed=3, geometry=GEOM, with_label=False)
        return self._case

    def seq(self, key: str) -> Path:
        return self.case / f"c-{key}.nii.gz"

    def segment(self, *extra: str, case: object = None, out: object = None) -> int:
        args = ["segment"] + ([str(case or self.case)] if "--batch" not in extra and not any(
            a.startswith("--t1") or a.startswith("--t2") for a in extra) else [])
        return main(args + ["--out", str(out or self.tmp / "out"), "--model", str(self.pkg), "--backend", "onnx",
                            "--progress", "none", *extra])

    # -- the outcomes: each asserts one and records that it did ---------------------------------------
    def refused(self, rc: int, *words: str) -> None:
        """A command refused: exit status 1, every word in its message, no traceback."""
        assert rc == 1, f"expected a refusal, got rc {rc}"
        text = self.caplog.text
        for w in words:
            assert w in text, f"{w!r} not in the message: {text[-800:]}"
        assert "Traceback" not in text
        self.checked.add("refused")

    @contextlib.contextmanager
    def raises(self, error: type, match: str) -> Iterator[None]:
        """An engine function refused with ``error`` (its message matching ``match``)."""
        with pytest.raises(error, match=match):
            yield
        self.checked.add("refused")

    def warned(self, text: str, *words: str) -> None:
        for w in words:
            assert w in text, f"{w!r} not in the warning: {text[-800:]}"
        self.checked.add("warned")

    def kept(self, before: object, after: object) -> None:
        """What the user had (a snapshot) is unchanged."""
        assert before == after, "what the user had was changed"
        self.checked.add("kept")

    def cleaned(self, *paths: Path) -> None:
        for p in paths:
            assert not os.path.lexists(p), f"left behind: {p}"
        self.checked.add("cleaned")

    def listed(self, row: Dict[str, str], *words: str, status: str = "failed") -> None:
        assert row["status"] == status, row
        for w in words:
            assert w in row["error"], f"{w!r} not in {row['error']!r}"
        self.checked.add("listed")

    def same(self, a: np.ndarray, b: np.ndarray) -> None:
        assert a.shape == b.shape and a.any(), (a.shape, b.shape)
        differ = int(np.count_nonzero(a != b))
        assert differ == 0, f"{differ} voxels differ"
        self.checked.add("same")

    def ignored(self, condition: bool, what: str) -> None:
        assert condition, what
        self.checked.add("ignored")

    def escaped(self, cells: Sequence[str], raw: Sequence[str]) -> None:
        for c, r in zip(cells, raw):
            assert c == "'" + r, (c, r)
        self.checked.add("escaped")

    def image(self, key: str) -> sitk.Image:
        return sitk.ReadImage(str(self.seq(key)))

    def write(self, key: str, array: np.ndarray, like: sitk.Image, path: object = None) -> Path:
        img = sitk.GetImageFromArray(array)
        img.CopyInformation(like)
        p = Path(path) if path else self.seq(key)
        sitk.WriteImage(img, str(p), True)
        return p


def _raw_nifti_with(env: Env, value: float) -> Path:
    """The T1c as float32 NIfTI with one voxel set to ``value`` in the raw bytes (ITK would read it as 0)."""
    img = env.image("t1c")
    arr = sitk.GetArrayFromImage(img).astype(np.float32)
    p = env.write("t1c", arr, img)
    raw = bytearray(gzip.decompress(p.read_bytes()))
    offset = int(np.frombuffer(bytes(raw[108:112]), "<f4")[0])
    mid = offset + 4 * (arr.size // 2)
    raw[mid:mid + 4] = np.float32(value).tobytes()
    p.write_bytes(gzip.compress(bytes(raw)))
    return p


def _sha_of_tree(folder: Path) -> Dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _tolerant(env: Env) -> Path:
    return env.fixture("tolerant")  # type: ignore[attr-defined, no-any-return]


def _batch(env: Env) -> Dict[str, object]:
    return env.fixture("batch_run")  # type: ignore[attr-defined, no-any-return]  # built once, by the first that asks


def _read(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def _labelled(env: Env, n: int = 2, **kwargs: object) -> Path:
    return synthetic.write_dataset(env.tmp / "train", n=n, geometry=GEOM, **kwargs)
