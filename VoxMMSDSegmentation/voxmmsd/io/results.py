"""Which files in a folder VoxMMSD wrote itself (a segmentation result), and which are the user's.

A finished result is marked by its ``report.json``, whose ``outputs`` name every file of it. While a result
is being moved into place, :data:`WRITING` (a hidden JSON file) names the files being written; it is removed
once ``report.json`` is in place. So a folder with result-named files but neither marker holds files that
the tool did not write: they are never replaced without ``--overwrite``, and never read back as input
(a case folder that holds the tool's own ``segmentation.seg.nrrd`` does not have a reference label).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Set

REPORT = "report.json"
#: written before the files of a result are moved into place, removed after its report.json
WRITING = ".voxmmsd-writing.json"


def _names(paths: Iterable[object]) -> Set[str]:
    return {Path(str(p)).name for p in paths if isinstance(p, str) and p}


def tool_written(folder: Path) -> Set[str]:
    """Names of the files in ``folder`` that a VoxMMSD result (finished, or interrupted while being written) holds;
    ``report.json`` included when it is there."""
    folder = Path(folder)
    names: Set[str] = set()
    for marker in (REPORT, WRITING):
        path = folder / marker
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict):
            continue
        outputs = data.get("outputs")
        if isinstance(outputs, dict):
            names |= _names(outputs.values())
        files = data.get("files")
        if isinstance(files, list):  # the writing marker: report.json counts only once it is there (below)
            names |= _names(files) - {REPORT}
        if marker == REPORT and ("outputs" in data or "model" in data):
            names.add(REPORT)
    return names
