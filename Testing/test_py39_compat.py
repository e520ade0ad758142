"""Everything Slicer imports (the module and the engine) must run on Python 3.9 (Slicer 5.8)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SLICER_SIDE = sorted(p for p in (ROOT / "VoxMMSDSegmentation").rglob("*.py") if "__pycache__" not in p.parts)

# attribute calls / keywords that do not exist on 3.9
NEW_ATTRS = {"removeprefix": (3, 9), "bit_count": (3, 10), "pairwise": (3, 10)}
NEW_KWARGS = {("zip", "strict"), ("dataclass", "slots"), ("dataclass", "kw_only")}


def _uses_union_annotations(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        ann = getattr(node, "annotation", None) or getattr(node, "returns", None)
        if ann is not None and any(isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitOr) for n in ast.walk(ann)):
            return True
    return False


def _has_future_annotations(tree: ast.Module) -> bool:
    return any(isinstance(n, ast.ImportFrom) and n.module == "__future__" and
               any(a.name == "annotations" for a in n.names) for n in tree.body)


@pytest.mark.parametrize("path", SLICER_SIDE, ids=lambda p: str(p.relative_to(ROOT)))
def test_parses_and_avoids_new_apis(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(path), feature_version=(3, 9))
    if _uses_union_annotations(tree):
        assert _has_future_annotations(tree), f"{path}: X | Y annotations need 'from __future__ import annotations'"
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            for kw in node.keywords:
                assert (name, kw.arg) not in NEW_KWARGS, f"{path}:{node.lineno}: {name}({kw.arg}=) is 3.10+"
        if isinstance(node, ast.Attribute) and node.attr in NEW_ATTRS and NEW_ATTRS[node.attr] > (3, 9):
            pytest.fail(f"{path}:{node.lineno}: .{node.attr} needs Python {NEW_ATTRS[node.attr]}")


def test_engine_never_imports_slicer_or_qt() -> None:
    for path in (ROOT / "VoxMMSDSegmentation" / "voxmmsd").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for n in names:
                assert n.split(".")[0] not in ("slicer", "qt", "ctk", "vtk"), f"{path} imports {n}"


def test_compiles_with_a_real_python39() -> None:
    """Byte-compile every Slicer-side file with a real Python 3.9 when one is installed."""
    import glob
    import os
    import shutil
    import subprocess

    found = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.9*/bin/python3.9")))
    exe = found[0] if found else shutil.which("python3.9")
    if exe is None:
        pytest.skip("no python3.9 on PATH")
    probe = subprocess.run([exe, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip("python3.9 is not runnable here")
    code = ("import sys\n"
            "bad = []\n"
            "for p in sys.argv[1:]:\n"
            "    try:\n"
            "        compile(open(p, encoding='utf-8').read(), p, 'exec')\n"
            "    except SyntaxError as e:\n"
            "        bad.append(f'{p}:{e.lineno}: {e.msg}')\n"
            "print('\\n'.join(bad)); sys.exit(1 if bad else 0)\n")
    r = subprocess.run([exe, "-c", code, *map(str, SLICER_SIDE)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
