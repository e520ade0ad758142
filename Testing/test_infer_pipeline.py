"""One path for a case: the single-case command and the batch write the same report and the same events;
the options record gives the command line it came from."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from support.packages import build_tiny_package
from voxmmsd import synthetic
from voxmmsd.cli.main import main
from voxmmsd.infer.options import SegmentOptions, add_arguments

#: report keys that differ between two runs of the same case (times, paths, the moment of writing)
VOLATILE = {"timings_s", "outputs", "created", "inputs", "plausibility"}


@pytest.fixture(scope="module")
def pkg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_package(tmp_path_factory.mktemp("pkg") / "tiny")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cohort")
    synthetic.write_case(root / "c1", "c1", seed=5, geometry=synthetic.default_geometry((32, 40, 28)))
    return root


def _parse(argv):
    p = argparse.ArgumentParser()
    add_arguments(p)
    return SegmentOptions.from_namespace(p.parse_args(argv))


@pytest.mark.parametrize("options", [
    SegmentOptions(),
    SegmentOptions(model="m@1.0", backend="onnx", device="cuda", precision="fp32", tta=True,
                   patch_size=(64, 64, 48), overlap=0.25, blend="constant", register="off", skull_strip="on",
                   min_component_ml=0.0, min_et_component_ml=0.1, tumour_bias=-0.5, fallback=False,
                   on_implausible="refuse", labels="legacy", qc=False),
    SegmentOptions(register="on", skull_strip="off", device="cuda:1"),
])
def test_the_arguments_give_the_record_back(options: SegmentOptions) -> None:
    assert _parse(options.to_arguments()) == options
    assert SegmentOptions.from_dict(json.loads(json.dumps(options.to_dict()))) == options


def test_register_off_is_said_on_the_command_line() -> None:
    """The Slicer bug: an unchecked 'register' box became no argument, and the engine's default (auto) still
    registered. The record spells every three-state value out."""
    args = SegmentOptions(register="off").to_arguments()
    assert args[args.index("--register") + 1] == "off"
    assert _parse(args).register == "off"


@pytest.mark.parametrize("bad", [dict(register=False), dict(register=True), dict(skull_strip="yes"),
                                 dict(device="gpu"), dict(on_implausible="drop"), dict(tta="on"),
                                 dict(patch_size=(64, 64))])
def test_a_bad_value_is_refused_by_name(bad) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        SegmentOptions(**bad)


def test_an_unknown_key_in_a_saved_record_is_refused() -> None:
    with pytest.raises(ValueError, match="regster"):
        SegmentOptions.from_dict({"regster": "off"})


def _events(text: str):
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def _case_events(events):
    """The events of one case (the batch adds its own start/progress/done around them)."""
    return [(e["stage"], e["event"], e.get("message") if e["event"] == "warning" else None)
            for e in events if e.get("case_id") == "c1" and (e["stage"] != "segment" or e["event"] == "warning")]


def test_single_case_and_batch_write_the_same_report_and_events(pkg: Path, cohort: Path, tmp_path: Path,
                                                                 capsys) -> None:
    common = ["--model", str(pkg), "--backend", "onnx", "--progress", "json", "--register", "off"]
    assert main(["segment", str(cohort / "c1"), "--out", str(tmp_path / "one")] + common) == 0
    single = _events(capsys.readouterr().out)
    assert main(["segment", "--batch", str(cohort), "--out", str(tmp_path / "many")] + common) == 0
    batch = _events(capsys.readouterr().out)
    one = json.loads((tmp_path / "one" / "report.json").read_text())
    many = json.loads((tmp_path / "many" / "c1" / "report.json").read_text())
    # before: only the single case recorded its predictor settings
    assert "predictor" in many and many["predictor"]["register"] == "off"
    assert many["options"]["register"] == "off" and many["options"]["model"] == str(pkg)
    assert {k: v for k, v in one.items() if k not in VOLATILE} == {k: v for k, v in many.items() if k not in VOLATILE}
    assert one["plausibility"]["verdict"] == many["plausibility"]["verdict"]
    assert _case_events(single) == _case_events(batch)
    stages = [s for s, e, _ in _case_events(single) if e == "progress"]
    assert stages[:3] == ["read", "check", "preprocess"] and stages[-1] == "write" and "predict" in stages
