"""A termination signal whose cleanup fails in turn (the error replaces the KeyboardInterrupt) still stops a batch."""

from __future__ import annotations

import csv
import errno
import signal
from pathlib import Path

import pytest
from support.packages import build_tiny_package
from voxmmsd import synthetic
from voxmmsd.infer.batch import run_batch
from voxmmsd.infer.options import SegmentOptions
from voxmmsd.infer.predictor import Predictor, PredictorConfig
from voxmmsd.io.discovery import find_dataset
from voxmmsd.jobs import signals
from voxmmsd.models.package import load_package

GEOM = dict(geometry=synthetic.default_geometry((32, 40, 28)))


class _MaskedStop(Predictor):
    """Segments normally; on the second case a SIGTERM arrives and a cleanup then fails with EBADF."""

    calls = 0

    def predict(self, case, progress=None):
        type(self).calls += 1
        if type(self).calls == 2:
            try:
                signals._handler(signal.SIGTERM, None)  # what the installed handler does on a real SIGTERM
            except KeyboardInterrupt:
                raise OSError(errno.EBADF, "Bad file descriptor") from None  # the cleanup's own failure wins
        return super().predict(case, progress)


def test_a_masked_sigterm_stops_the_batch_and_lists_what_was_done(tmp_path: Path) -> None:
    data = synthetic.write_dataset(tmp_path / "cohort", n=3, with_label=False, **GEOM)
    pkg = load_package(build_tiny_package(tmp_path / "pkg"))
    out = tmp_path / "out"
    _MaskedStop.calls = 0
    pred = _MaskedStop(pkg, PredictorConfig(backend="torch", precision="fp32", uncertainty=False))
    with signals.handled():
        with pytest.raises(signals.Terminated):
            run_batch(pred, find_dataset(data), out, SegmentOptions(qc=False), progress_bar=False)
    with open(out / "summary.csv", newline="") as f:
        rows = {r["case_id"]: r["status"] for r in csv.DictReader(f)}
    assert len(rows) == 3
    assert list(rows.values()).count("done") == 1 and list(rows.values()).count("interrupted") == 2, rows


def test_without_a_signal_an_error_is_one_failed_case(tmp_path: Path) -> None:
    class Failing(Predictor):
        def predict(self, case, progress=None):
            raise OSError(errno.EBADF, "Bad file descriptor")

    data = synthetic.write_dataset(tmp_path / "cohort", n=2, with_label=False, **GEOM)
    pkg = load_package(build_tiny_package(tmp_path / "pkg"))
    with signals.handled():
        results = run_batch(Failing(pkg, PredictorConfig(backend="torch", precision="fp32")), find_dataset(data),
                            tmp_path / "out", SegmentOptions(qc=False), progress_bar=False)
    assert [r.status for r in results] == ["failed", "failed"]
