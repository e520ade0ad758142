"""The Slicer module's packaging and its plain-Python decisions: CMake lists, Python 3.9
syntax, the .ui widgets the code uses, the model list, dependencies, commands."""

from __future__ import annotations

import ast
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULE_DIR = ROOT / "VoxMMSDSegmentation"
if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))

from VoxMMSDSegmentationLib import commands  # noqa: E402

SLICER_SIDE = [MODULE_DIR / "VoxMMSDSegmentation.py", ROOT / "scripts" / "slicer_batch.py"] + sorted(
    (MODULE_DIR / "VoxMMSDSegmentationLib").glob("*.py"))


# ------------------------------------------------------------------ CMake

def cmake_sets(text: str) -> dict:
    """``set(NAME items...)`` and ``file(GLOB_RECURSE NAME RELATIVE dir patterns...)`` of a CMakeLists."""
    text = re.sub(r"#[^\n]*", "", text)
    out = {}
    for m in re.finditer(r"\bset\(\s*(\w+)\s+([^)]*)\)", text):
        out[m.group(1)] = ("list", m.group(2).split())
    for m in re.finditer(r"file\(\s*GLOB_RECURSE\s+(\w+)\s+RELATIVE\s+\S+\s+([^)]*)\)", text):
        out[m.group(1)] = ("glob", m.group(2).split())
    return out


def expand(name: str, sets: dict, variables: dict) -> list:
    kind, items = sets[name]
    files = []
    for item in items:
        ref = re.fullmatch(r"\$\{(\w+)\}", item)
        if ref and ref.group(1) in sets:
            files += expand(ref.group(1), sets, variables)
            continue
        for var, value in variables.items():
            item = item.replace("${%s}" % var, value)
        if kind == "glob":
            pattern = item.replace(str(MODULE_DIR) + "/", "")
            base, _, tail = pattern.partition("/*")
            files += [str(p.relative_to(MODULE_DIR)) for p in (MODULE_DIR / base).rglob("*" + tail.lstrip("*"))
                      if p.is_file()]
        else:
            files.append(item)
    return files


@pytest.fixture(scope="module")
def packaged():
    sets = cmake_sets((MODULE_DIR / "CMakeLists.txt").read_text())
    variables = {"MODULE_NAME": "VoxMMSDSegmentation", "CMAKE_CURRENT_SOURCE_DIR": str(MODULE_DIR)}
    return (set(expand("MODULE_PYTHON_SCRIPTS", sets, variables)),
            set(expand("MODULE_PYTHON_RESOURCES", sets, variables)))


def needed_files():
    """What the module needs at run time: every .py and .json of module, library and engine, UI, icons."""
    for path in MODULE_DIR.rglob("*"):
        rel = path.relative_to(MODULE_DIR)
        if not path.is_file() or "__pycache__" in rel.parts or rel.parts[0].endswith(".egg-info"):
            continue
        if rel.parts[0] in ("VoxMMSDSegmentationLib", "voxmmsd") or rel.parts[0] == "Resources" or \
                rel.name == "VoxMMSDSegmentation.py":
            if path.suffix in (".py", ".json", ".ui", ".png") or rel.parts[:2] == ("Resources", "Sample"):
                yield str(rel)


def test_cmake_lists_every_needed_file(packaged):
    scripts, resources = packaged
    listed = scripts | resources
    missing = sorted(f for f in needed_files() if f not in listed)
    assert not missing, f"not packaged by VoxMMSDSegmentation/CMakeLists.txt: {missing}"
    assert all(f.endswith(".py") for f in scripts)
    assert "VoxMMSDSegmentation.py" in scripts and "voxmmsd/cli/main.py" in scripts
    assert "Resources/UI/VoxMMSDSegmentation.ui" in resources


def test_cmake_lists_only_existing_files(packaged):
    scripts, resources = packaged
    absent = sorted(f for f in scripts | resources if not (MODULE_DIR / f).is_file())
    assert not absent, f"listed but missing: {absent}"


def test_extension_cmake_and_s4ext():
    top = (ROOT / "CMakeLists.txt").read_text()
    assert 'set(EXTENSION_CATEGORY "Segmentation")' in top
    assert "add_subdirectory(VoxMMSDSegmentation)" in top
    assert "Slicer_EXTENSION_GENERATE_CONFIG" in top and "Slicer_EXTENSION_CPACK" in top
    assert (ROOT / "Resources" / "Icons" / "VoxMMSD.png").is_file()
    s4ext = dict(line.split(" ", 1) for line in (ROOT / "VoxMMSD.s4ext").read_text().splitlines()
                 if line.strip() and not line.startswith("#"))
    assert s4ext["category"] == "Segmentation" and s4ext["scm"] == "git"


# ------------------------------------------------------------------ Python 3.9, no torch, nothing at import

@pytest.mark.parametrize("path", SLICER_SIDE, ids=lambda p: p.name)
def test_slicer_side_parses_as_python_39(path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path), feature_version=(3, 9))
    first = [n for n in tree.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))][0]
    assert isinstance(first, ast.ImportFrom) and first.module == "__future__", "needs the __future__ import"
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n and n.split(".")[0] == "torch" for n in names), f"{path.name} imports torch"


def test_library_imports_without_slicer_or_qt():
    code = ("import sys; sys.path.insert(0, %r)\n" % str(MODULE_DIR)
            + "import VoxMMSDSegmentationLib.%s\n" * 10 % ("batch", "chart", "commands", "dependencies", "events",
                                                           "jobs", "models", "process", "scene", "segmentation")
            + "bad = [m for m in ('slicer', 'qt', 'torch', 'vtk', 'matplotlib') if m in sys.modules]\n"
            + "assert not bad, bad\n")
    import subprocess

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


#: the widget's code: the module file and the panels it delegates sections to
WIDGET_FILES = ("VoxMMSDSegmentation.py", "VoxMMSDSegmentationLib/training_panel.py",
                "VoxMMSDSegmentationLib/cohort_panel.py")
LOGIC_FILE = MODULE_DIR / "VoxMMSDSegmentationLib" / "logic.py"


def _widget_source() -> str:
    return "\n".join((MODULE_DIR / f).read_text() for f in WIDGET_FILES)


def test_widget_names_exist_in_ui():
    ui = ET.parse(MODULE_DIR / "Resources" / "UI" / "VoxMMSDSegmentation.ui")
    names = {w.get("name") for w in ui.iter("widget")}
    used = set(re.findall(r"self\.ui\.(\w+)", _widget_source()))
    assert used and not (used - names), f"widgets used but absent from the .ui: {sorted(used - names)}"
    params = {w.get("name"): w.find("property[@name='SlicerParameterName']/string").text
              for w in ui.iter("widget") if w.find("property[@name='SlicerParameterName']") is not None}
    assert set(params.values()) == {"t1n", "t1c", "t2w", "t2f", "tta", "refuse_implausible"}  # register: a selector
    for key in params.values():
        assert re.search(rf"^\s+{key}: ", LOGIC_FILE.read_text(), re.M), f"parameter {key} missing in the node"


# ------------------------------------------------------------------ commands

def test_segment_arguments(tmp_path):
    args = commands.segment_arguments({"t1c": tmp_path / "c.nrrd", "t2f": tmp_path / "f.nrrd"}, tmp_path / "out",
                                      commands.SegmentOptions(model="m", device="cuda", tta=True,
                                                              min_component_ml=0.5))
    assert args[:5] == ["segment", "--t1c", str(tmp_path / "c.nrrd"), "--t2f", str(tmp_path / "f.nrrd")]
    for flag, value in (("--out", str(tmp_path / "out")), ("--progress", "json"), ("--device", "cuda"),
                        ("--model", "m"), ("--min-component-ml", "0.5"), ("--backend", "auto"),
                        ("--register", "auto"), ("--skull-strip", "auto")):
        assert args[args.index(flag) + 1] == value
    assert "--tta" in args
    off = commands.segment_arguments({}, tmp_path, commands.SegmentOptions(skull_strip="off"))
    assert off[off.index("--skull-strip") + 1] == "off"
    with pytest.raises(ValueError, match="device"):
        commands.SegmentOptions(device="gpu")


@pytest.mark.parametrize("register", ["off", "on", "auto"])
def test_the_engine_reads_the_modules_register_choice(tmp_path, register):
    """Bug: the module's register was a bool and the engine's auto|on|off, so an unchecked box sent nothing and the
    engine's default (auto) still registered. The engine's own parser reads what the module sends."""
    from voxmmsd.cli.main import build_parser

    args = commands.segment_arguments({"t1c": tmp_path / "c.nrrd"}, tmp_path / "out",
                                      commands.SegmentOptions(register=register))
    assert build_parser().parse_args(args).register == register


def test_training_arguments():
    pre = commands.pretrain_arguments(commands.PretrainOptions("D", "R", iterations=500, crop_size=(64, 64, 64)))
    assert pre == ["pretrain", "--data", "D", "--out", "R", "--device", "auto", "--set", "train.iterations=500",
                   "--set", "data.patch_size=64,64,64"]
    fine = commands.finetune_arguments(commands.FinetuneOptions("D", "R", init="P", labelled_cases=5))
    assert fine[fine.index("--init") + 1] == "P" and "data.train=5" in fine and "train.iterations=20000" in fine
    assert "--init" not in commands.finetune_arguments(commands.FinetuneOptions("D", "R"))


def test_module_gui_stays_light():
    """What the review found on the GUI thread must not come back: PNGs rendered into new temporary
    folders on every tick, a jobs timer running while the module is hidden, whole re-reads of events."""
    source = _widget_source()
    assert "tempDirectory(" not in source and "QPixmap" not in source and "matplotlib" not in source

    def methods_of(path: Path, name: str):
        text = path.read_text()
        cls = next(n for n in ast.parse(text).body if isinstance(n, ast.ClassDef) and n.name == name)
        return {f.name: ast.get_source_segment(text, f) for f in cls.body if isinstance(f, ast.FunctionDef)}

    widget = methods_of(MODULE_DIR / "VoxMMSDSegmentation.py", "VoxMMSDSegmentationWidget")
    assert "self.jobTimer.start()" in widget["enter"] and "self.jobTimer.stop()" in widget["exit"]
    assert "jobTimer.start" not in widget["setup"]
    panel = methods_of(MODULE_DIR / "VoxMMSDSegmentationLib" / "training_panel.py", "TrainingPanel")
    assert "trainingPanel.refresh" in widget["refreshJobs"]
    assert "JobMonitor" in panel["refresh"] and "lossChart.show" in panel["refresh"]
    assert "statuses()" not in panel["refresh"]  # no whole re-read of every events.jsonl per tick


def test_module_file_uses_only_library_names_that_exist():
    """The Widget and Logic cannot run here; at least every library name they use must exist."""
    import importlib

    source = _widget_source() + "\n" + LOGIC_FILE.read_text()
    tree = ast.parse(source.replace("from __future__ import annotations", ""))
    aliases, missing = {}, []
    def defines(module: str, name: str) -> bool:
        try:
            return hasattr(importlib.import_module(module), name)
        except ModuleNotFoundError:  # a part that needs Slicer's GUI (qt, ScriptedLoadableModule): its source
            path = MODULE_DIR / (module.replace(".", "/") + ".py")
            top = ast.parse(path.read_text()).body
            return any(getattr(n, "name", None) == name or (isinstance(n, ast.Assign) and any(
                getattr(t, "id", None) == name for t in n.targets)) for n in ast.walk(ast.Module(top, [])))

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("VoxMMSDSegmentationLib"):
            for alias in node.names:
                if node.module == "VoxMMSDSegmentationLib":  # a library module
                    aliases[alias.asname or alias.name] = importlib.import_module(f"{node.module}.{alias.name}")
                elif not defines(node.module, alias.name):
                    missing.append(f"{node.module}.{alias.name}")
    assert {"jobs", "dependencies", "models"} <= set(aliases)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            if not hasattr(aliases[node.value.id], node.attr):
                missing.append(f"{node.value.id}.{node.attr}")
    assert not missing, f"the module file uses names the library does not have: {missing}"


def test_widget_calls_only_logic_methods_that_exist():
    tree = ast.parse(LOGIC_FILE.read_text())
    logic = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "VoxMMSDSegmentationLogic")
    methods = {f.name for f in logic.body if isinstance(f, ast.FunctionDef)} | {"getParameterNode"}
    used = set(re.findall(r"self\.logic\.(\w+)", _widget_source()))
    assert used and not (used - methods), f"Logic lacks {sorted(used - methods)}"
