"""The sample case the module registers with Slicer's Sample Data exists and is a complete real case."""

from __future__ import annotations

import sys
from pathlib import Path

from voxmmsd.io.discovery import SEQUENCES, find_case

MODULE = Path(__file__).resolve().parents[1] / "VoxMMSDSegmentation"
if str(MODULE) not in sys.path:
    sys.path.insert(0, str(MODULE))

from VoxMMSDSegmentationLib.sampledata import SAMPLE_FILES  # noqa: E402


def test_registered_sample_files_exist_and_form_a_case() -> None:
    folder = MODULE / "Resources" / "Sample" / "BraTS18-sample"
    for _, stem in SAMPLE_FILES:
        assert (folder / f"{stem}.nii.gz").is_file(), stem
    case = find_case(folder)
    assert set(case.sequences) == set(SEQUENCES) and case.label is not None
