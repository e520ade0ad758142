"""Every fault a new user may cause, tried as a table: bad input, replaced results, models, batch, leftovers.

Each entry of :data:`FAULTS` is one fault, with its area and the outcome it must have
(``refused``: a clear message naming the file and the fix, exit status 1, no traceback, nothing
written; ``warned``: a result plus a warning (only where one is due); ``kept``: what the user had stays
as it was; ``listed``: the batch goes on and lists the case with the reason; ``cleaned``: leftovers
removed; ``same``: the same answer however the input is stored or how often it is run; ``ignored``: what
must not be used is left out (links, pipes, an archive's modes); ``escaped``: text that would run as a
spreadsheet formula is escaped). The outcome is asserted, not only declared: each fault checks it
through the :class:`Env` helper of that name, and :func:`test_fault` fails a fault whose declared
outcome was not checked. ``docs/reliability.md`` lists the same faults with their outcomes;
:func:`test_docs_list_every_fault` keeps the two in step. All cases are synthetic and small (a tiny
4-channel U-Net package); the few faults that need seconds of real work are marked slow. The faults
live in ``support/faults_*.py`` by area (inputs, outputs, models, run time), the table's machinery in
``support/reliability.py``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Dict, List

import pytest
from support import faults_inputs, faults_models, faults_outputs, faults_runtime  # noqa: F401  (they register)
from support.packages import build_tiny_package
from support.reliability import FAULTS, GEOM, ROOT, Env, Fault
from voxmmsd import synthetic
from voxmmsd.cli.main import main
from voxmmsd.errors import VoxMMSDError

# -- the batch every batch fault checks its rows of ----------------------------------------------

@pytest.fixture(scope="module")
def batch_run(pkg: Path, tmp_path_factory: pytest.TempPathFactory) -> Dict[str, object]:
    """One batch over a cohort with every batch fault planted; the batch faults (support/faults_outputs.py)
    check their rows."""
    root = tmp_path_factory.mktemp("batch")
    data = root / "data"
    synthetic.write_dataset(data, n=2, geometry=GEOM)  # case000, case001: good
    shutil.copyfile(data / "case001" / "case001-t2f.nii.gz", data / "case001" / "case001_flair.nii.gz")
    (data / "empty_case").mkdir()
    (data / "__MACOSX" / "case000").mkdir(parents=True)  # unzip metadata: not a case, not listed
    deep = data / "site" / "scanner" / "deepcase"
    synthetic.write_case(deep, "deepcase", seed=4, geometry=GEOM, with_label=False)
    synthetic.write_case(data / "siteA" / "case000", "case000", seed=5, geometry=GEOM, with_label=False)
    synthetic.write_case(data / "broken", "broken", seed=6, geometry=GEOM, with_label=False)
    for k, name in enumerate(("=2+5", "@SUM(1+1)")):  # case ids a spreadsheet would run as formulas
        synthetic.write_case(data / name, name, seed=7 + k, geometry=GEOM, with_label=False)
    (data / "broken" / "broken-t1c.nii.gz").write_bytes(b"garbage")
    out = root / "out"
    rc = main(["segment", "--batch", str(data), "--out", str(out), "--model", str(pkg), "--backend", "onnx",
               "--progress", "none", "--no-qc"])
    rows: Dict[str, List[Dict[str, str]]] = {}
    import csv

    if (out / "summary.csv").is_file():  # (a batch that aborted has none: each batch fault then fails alone)
        with open(out / "summary.csv", newline="") as f:
            for r in csv.DictReader(f):
                rows.setdefault(r["case_id"], []).append(r)
    return {"rc": rc, "rows": rows, "out": out}


# -- the table ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pkg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_package(tmp_path_factory.mktemp("pkg") / "tiny")


@pytest.fixture(scope="module")
def tolerant(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny package, trained (as it says) to tolerate a missing sequence."""
    return build_tiny_package(tmp_path_factory.mktemp("tolerant") / "tolerant", tolerates_missing=True)


def _params() -> List[object]:
    return [pytest.param(f, id=f.name, marks=[pytest.mark.slow] if f.slow else []) for f in FAULTS]


@pytest.mark.parametrize("item", _params())
def test_fault(item: Fault, pkg: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture,
               monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    env = Env(tmp_path, pkg, caplog, monkeypatch)
    env.fixture = request.getfixturevalue  # type: ignore[attr-defined]  # the batch and the tolerant package, when used
    try:
        item.run(env)
    except VoxMMSDError as exc:  # a fault must be handled by the command, not escape from it
        raise AssertionError(f"{item.name}: {type(exc).__name__} escaped: {exc}") from None
    assert item.outcome in env.checked, (f"{item.name}: its declared outcome {item.outcome!r} was not checked "
                                         f"(checked: {sorted(env.checked)})")


def test_docs_list_every_fault() -> None:
    doc = (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8")
    missing = [f.name for f in FAULTS if f"`{f.name}`" not in doc]
    assert not missing, f"docs/reliability.md does not list: {missing}"
    for f in FAULTS:  # the table row says the outcome the test asserts
        row = next(line for line in doc.splitlines() if line.startswith(f"| `{f.name}` |"))
        assert f"| {f.area} | {f.outcome} |" in row, (f.name, row)
    assert f"{len(FAULTS)} faults" in doc
    assert len(FAULTS) >= 80
