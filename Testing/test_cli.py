"""The command line: version, help for every sub-command, inspect."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from voxmmsd import __version__, synthetic
from voxmmsd.cli.main import COMMANDS, main


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "voxmmsd", *args], capture_output=True, text=True, timeout=120)


def test_version() -> None:
    r = _run("--version")
    assert r.returncode == 0 and __version__ in r.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_help_of_each_command(command: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert command in capsys.readouterr().out


def test_inspect_reports_resampling(tmp_path: Path) -> None:
    ref = synthetic.default_geometry((40, 44, 24))
    other = synthetic.default_geometry((30, 30, 20), (1.5, 1.5, 1.5))
    synthetic.write_case(tmp_path / "c", "insp", seed=1, geometry=ref, grids={"t2f": other})
    r = _run("inspect", str(tmp_path / "c"), "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["sequences"]["t1c"]["resampling"].startswith("none")
    assert report["sequences"]["t2f"]["resampling"].startswith("linear")
    assert report["sequences"]["label"]["values"] == [0, 1, 2, 3]
    text = _run("inspect", str(tmp_path / "c"))
    assert "T2-FLAIR" in text.stdout and "1.5x1.5x1.5 mm" in text.stdout


def test_inspect_bad_input_is_a_clear_message(tmp_path: Path) -> None:
    r = _run("inspect", str(tmp_path / "does-not-exist"))
    assert r.returncode == 1
    assert "Case folder not found" in r.stderr and "Traceback" not in r.stderr


def test_bare_register_does_not_swallow_the_case_folder() -> None:
    from voxmmsd.cli.main import bare_options, build_parser

    parser = build_parser()
    args = parser.parse_args(bare_options(["segment", "--register", "cases/A", "--out", "o"]))
    assert args.register == "on" and str(args.case) == "cases/A"
    args = parser.parse_args(bare_options(["segment", "cases/A", "--out", "o", "--register"]))
    assert args.register == "on"
    args = parser.parse_args(bare_options(["segment", "--register", "off", "cases/A", "--out", "o"]))
    assert args.register == "off" and str(args.case) == "cases/A"
    assert parser.parse_args(["segment", "cases/A", "--out", "o"]).register == "auto"
