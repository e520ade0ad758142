"""The engine's layers import one way (docs/design.md): the sequence vocabulary at the ground floor, then io/, then
the raw-exam preparation (exam/), then inference (infer/), then the command line."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Set

import pytest

ENGINE = Path(__file__).resolve().parents[1] / "VoxMMSDSegmentation" / "voxmmsd"

#: package -> the engine packages it must never import (at module level or inside a function)
NEVER = {
    "sequences": {"*"},  # plain Python: nothing of the engine
    "io": {"exam", "infer", "cli", "finetune", "pretrain", "experiment", "cohort"},
    "exam": {"infer", "cli", "finetune", "pretrain", "experiment", "cohort"},
    "infer": {"cli", "finetune", "pretrain", "experiment", "cohort"},
}


def engine_imports(path: Path) -> Set[str]:
    """The first part below ``voxmmsd`` of every engine module ``path`` imports (``io``, ``exam``, ...)."""
    found: Set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
        if isinstance(node, ast.ImportFrom) and node.module == "voxmmsd":
            names = ["voxmmsd." + a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "voxmmsd" and len(parts) > 1:
                found.add(parts[1])
    return found


def layer_files() -> Dict[str, list]:
    return {layer: sorted(ENGINE.glob(f"{layer}/**/*.py")) if (ENGINE / layer).is_dir() else [ENGINE / f"{layer}.py"]
            for layer in NEVER}


@pytest.mark.parametrize("layer", list(NEVER))
def test_imports_go_one_way(layer: str) -> None:
    files = layer_files()[layer]
    assert files
    for path in files:
        used = engine_imports(path) - {layer}
        banned = used if "*" in NEVER[layer] else used & NEVER[layer]
        assert not banned, f"{path.relative_to(ENGINE)} imports {sorted(banned)}"


def test_the_rule_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from voxmmsd.infer import predictor\n    from voxmmsd import cli\n")
    assert engine_imports(bad) == {"infer", "cli"}
