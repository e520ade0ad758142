"""``voxmmsd experiment crossval``: its files keep the format of the committed results (docs/results/v3),
and the score, table and compare steps read and write what they should (in process, seconds)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from voxmmsd import synthetic
from voxmmsd.cli.main import main
from voxmmsd.errors import InputError, VoxMMSDError

ROOT = Path(__file__).resolve().parent.parent
V3 = ROOT / "docs" / "results" / "v3"
MODELS = ROOT / "Resources" / "models" / "voxmmsd-brats-default"


def test_protocol_reproduces_the_committed_tables_byte_for_byte(tmp_path: Path) -> None:
    # the arms' per-case scores as the command finds them: OUT/ARM/EVAL/per_case.csv
    for csv in (V3 / "per_case").glob("*.csv"):
        arm, _, ev = csv.stem.partition("-")
        (tmp_path / arm / ev).mkdir(parents=True, exist_ok=True)
        shutil.copy(csv, tmp_path / arm / ev / "per_case.csv")
    assert main(["experiment", "crossval", "protocol", "--out", str(tmp_path), "--splits", str(V3 / "splits.json"),
                 "--candidate", "v3", "--baseline", f"b100={MODELS / '1.0.0'}", "--baseline", f"w210={MODELS}"]) == 0
    assert (tmp_path / "protocol.json").read_bytes() == (V3 / "protocol.json").read_bytes()
    assert (tmp_path / "protocol.md").read_bytes() == (V3 / "protocol.md").read_bytes()
    with pytest.raises(InputError, match="NAME=MODEL"):
        from voxmmsd.cli.crossval import cmd_protocol
        from voxmmsd.cli.main import build_parser

        cmd_protocol(build_parser().parse_args(["experiment", "crossval", "protocol", "--out", str(tmp_path),
                                                "--splits", str(V3 / "splits.json"), "--candidate", "v3",
                                                "--baseline", "b100"]))


def test_splits_from_source_folders_match_the_committed_split_file(tmp_path: Path) -> None:
    committed = json.loads((V3 / "splits.json").read_text())
    src = tmp_path / "sources"
    for case, source in committed["sources"].items():  # one folder per case with a (placeholder) image
        (src / source / "patients" / case).mkdir(parents=True)
        (src / source / "patients" / case / f"{case}_t1.nii.gz").write_bytes(b"")
    names = sorted(set(committed["sources"].values()))
    args = ["experiment", "crossval", "splits", "--out", str(tmp_path / "splits.json"), "--data-out",
            str(tmp_path / "data"), "--together", "Brats18_2013_20_1,BraTS-GLI-00012-000"]
    for name in names:
        args += ["--source", f"{name}={src / name}"]
    assert main(args) == 0
    assert (tmp_path / "splits.json").read_bytes() == (V3 / "splits.json").read_bytes()
    links = sorted(p.name for p in (tmp_path / "data").iterdir())
    assert links == sorted(committed["sources"]) and (tmp_path / "data" / links[0]).is_symlink()
    with pytest.raises(InputError, match="NAME=DIR"):
        from voxmmsd.experiment.cv_data import parse_sources

        parse_sources([str(src)])


def test_a_case_id_under_two_sources_is_refused(tmp_path: Path) -> None:
    from voxmmsd.experiment.cv_data import source_cases

    for s in ("a", "b"):
        (tmp_path / s / "x").mkdir(parents=True)
        (tmp_path / s / "x" / "x_t1.nii.gz").write_bytes(b"")
    with pytest.raises(InputError, match="found twice"):
        source_cases([("a", tmp_path / "a"), ("b", tmp_path / "b")])


def test_link_cases_keeps_exactly_the_selection(tmp_path: Path) -> None:
    from voxmmsd.experiment.cv_data import link_cases

    dirs = {c: tmp_path / "src" / c for c in ("a", "b", "c")}
    for d in dirs.values():
        d.mkdir(parents=True)
    link_cases(dirs, ["a", "b"], tmp_path / "held")
    link_cases(dirs, ["b", "c"], tmp_path / "held")
    assert sorted(p.name for p in (tmp_path / "held").iterdir()) == ["b", "c"]
    assert (tmp_path / "held" / "c").resolve() == dirs["c"].resolve()


def _labelled_cases(root: Path, ids) -> Path:
    for i, c in enumerate(ids):
        synthetic.write_case(root / c, c, seed=i, geometry=synthetic.default_geometry((32, 36, 28)))
    return root


def _predict_by_copy(data: Path, pred: Path, ids, missing=()) -> None:
    """Predictions: copies of the reference label maps, none for the ``missing`` cases."""
    from voxmmsd.io.discovery import find_case

    for c in ids:
        if c not in missing:
            (pred / c).mkdir(parents=True, exist_ok=True)
            shutil.copy(find_case(data / c).label, pred / c / "segmentation.nii.gz")


def test_score_table_and_compare(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ids = ["c0", "c1", "c2", "c3"]
    data = _labelled_cases(tmp_path / "data", ids)
    splits = tmp_path / "splits.json"
    splits.write_text(json.dumps({"k": 2, "seed": 0, "folds": [["c0", "c1"], ["c2", "c3"]],
                                  "sources": {"c0": "a", "c1": "b", "c2": "a", "c3": "b"}}))
    cv = tmp_path / "cv"
    _predict_by_copy(data, cv / "good" / "pred", ids)
    _predict_by_copy(data, cv / "bad" / "pred", ids, missing=("c2",))
    common = ["--data", str(data), "--splits", str(splits), "--out", str(cv)]
    assert main(["experiment", "crossval", "score", *common, "--name", "good"]) == 0
    printed = capsys.readouterr().out
    assert "| WT | 1.000 ± 0.000" in printed and "a cases only:" in printed and "b cases only:" in printed
    assert main(["experiment", "crossval", "score", *common, "--name", "bad", "--exclude", "c1"]) == 0
    good = json.loads((cv / "good" / "eval" / "crossval.json").read_text())
    bad = json.loads((cv / "bad" / "eval" / "crossval.json").read_text())
    assert good["summary"]["WT"]["dice"]["n"] == 4 and good["summary"]["WT"]["dice"]["mean"] == 1.0
    assert good["by_source"]["a"]["WT"]["dice"]["n"] == 2
    # c1 excluded: not scored (not a missing prediction); c2 missing: scored as empty, Dice 0
    assert bad["excluded"] == ["c1"] and bad["summary"]["WT"]["dice"]["n"] == 3
    assert bad["summary"]["WT"]["dice"]["mean"] == pytest.approx(2 / 3)
    assert sorted(p.name for p in (cv / "bad" / "ref-eval").iterdir()) == ["c0", "c2", "c3"]
    assert "$ voxmmsd evaluate --pred" in (cv / "bad" / "log.txt").read_text()  # the command, in the log
    capsys.readouterr()
    assert main(["experiment", "crossval", "table", "--out", str(cv), "good", "bad:eval"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0] == ("| recipe | region | dice mean ± SD cases (SD folds) | lesion_dice mean ± SD cases (SD folds) "
                        "| hd95_mm mean ± SD cases (SD folds) | n |")
    assert table[2].startswith("| good | WT | 1.000 ± 0.000 (0.000) |") and table[2].endswith("| 4 |")
    assert main(["experiment", "crossval", "compare", "--out", str(cv), "--json", str(tmp_path / "cmp.json"),
                 "good", "bad"]) == 0
    out = capsys.readouterr().out
    cmp = json.loads((tmp_path / "cmp.json").read_text())
    assert cmp["a"] == "good" and cmp["dice"]["WT"]["n"] == 3 and cmp["dice"]["WT"]["a_better"] == 1
    assert "bad minus good" in out and "| dice | WT | 3 | 1.000 | 0.667 | -0.333" in out
    assert main(["experiment", "crossval", "compare", "--out", str(cv), "--splits", str(splits), "--source", "a",
                 "good", "bad"]) == 0
    assert "| dice | WT | 2 |" in capsys.readouterr().out
    assert main(["experiment", "crossval", "table", "--out", str(cv), "missing"]) == 1  # a clear error, no trace


def test_a_failing_command_names_itself_and_the_log(tmp_path: Path) -> None:
    from voxmmsd.experiment.cv_engine import run_command

    with pytest.raises(VoxMMSDError, match=r"`voxmmsd experiment` ended with status 2; see .*log.txt"):
        run_command(["experiment"], tmp_path / "log.txt")
    assert (tmp_path / "log.txt").read_text().startswith("$ voxmmsd experiment\n")
    with pytest.raises(VoxMMSDError, match="options were refused"):
        run_command(["segment", "--batch", str(tmp_path), "--out", str(tmp_path / "o"), "--bogus"],
                    tmp_path / "log.txt")


def test_a_command_leaves_the_logging_as_it_found_it(tmp_path: Path) -> None:
    import logging

    from voxmmsd.experiment.cv_engine import run_command

    console = logging.StreamHandler()
    console.setLevel(logging.INFO)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(console)
    root.setLevel(logging.INFO)
    before = list(root.handlers)
    try:
        (tmp_path / "pred").mkdir()
        with pytest.raises(InputError):  # evaluate finds nothing to score: its error, unchanged
            run_command(["evaluate", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "pred"),
                         "--out", str(tmp_path / "ev")], tmp_path / "log.txt")
        assert console.level == logging.INFO and root.handlers == before  # no handler left behind
        assert "$ voxmmsd evaluate" in (tmp_path / "log.txt").read_text()
    finally:
        root.removeHandler(console)
        root.setLevel(old_level)
