"""The one sequence vocabulary (voxmmsd.sequences): real-world names, read the same by the engine's discovery and
the Slicer module's volume matching."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from voxmmsd.io.discovery import find_case
from voxmmsd.metrics.pairing import find_label_maps
from voxmmsd.sequences import LABEL, SEQUENCES, assign_volumes, classify, missing, reference_for

ROOT = Path(__file__).resolve().parents[1]
MODULE_DIR = ROOT / "VoxMMSDSegmentation"

#: name as scanners, exports, data sets and Slicer users write it -> what it is (None: never taken)
TABLE = {
    # T1-weighted FLAIR (GE, Siemens): a T1, not a T2-FLAIR
    "T1 FLAIR": "t1n", "T1FLAIR": "t1n", "Sag T1 FLAIR": "t1n", "exam_T1_FLAIR": "t1n",
    "AX T1 POST GD FLAIR": "t1c", "T1 FLAIR post contrast": "t1c", "T1FLAIR+C": "t1c",
    # MPRAGE before and after gadolinium
    "MPRAGE": "t1n", "MPRAGE pre": "t1n", "t1_mprage_sag_p2_iso": "t1n", "MPRAGE post": "t1c",
    "MPRAGE_post_gd": "t1c", "MPRAGE POST": "t1c",
    # T1 with contrast
    "T1GD": "t1c", "T1+C": "t1c", "T1 Gd": "t1c", "T1 POST GAD": "t1c", "SAG T1 C+": "t1c", "T1CE": "t1c",
    "UPENN-GBM-00006_11_T1GD": "t1c", "sub-01_ce-gadolinium_T1w": "t1c", "BraTS-GLI-00001-000-t1c": "t1c",
    "Brats18_2013_3_1_t1ce": "t1c",
    # T1 without
    "T1 native": "t1n", "AX T1 PRE": "t1n", "sub-01_T1w": "t1n", "BraTS-GLI-00001-000-t1n": "t1n",
    "Brats18_2013_3_1_t1": "t1n", "x_0000": "t1n",
    # T2 and FLAIR
    "T2 TSE": "t2w", "T2W_TSE": "t2w", "Ax T2 FSE": "t2w", "T2": "t2w", "BraTS-GLI-00001-000-t2w": "t2w",
    "fla": "t2f", "FLAIR": "t2f", "AX T2 FLAIR": "t2f", "T2-FLAIR": "t2f", "t2_tirm_tra_dark-fluid": "t2f",
    "3D FLAIR": "t2f", "BraTS-GLI-00001-000-t2f": "t2f", "x_0003": "t2f",
    # never a sequence: diffusion, perfusion, susceptibility, localisers, other volumes
    "Ax DWI": None, "DWI": None, "ADC": None, "SWI": None, "T2*": None, "perfusion": None, "perfusion DSC": None,
    "DSC perf": None, "localizer": None, "MR Head": None, "segmentation": None, "notes": None,
    # label maps
    "seg": LABEL, "segm": LABEL, "label": LABEL, "BraTS-GLI-00001-000-seg": LABEL, "Brats18_1_seg": LABEL,
    "UPENN-GBM-00006_11_segm": LABEL,
}


@pytest.mark.parametrize("name,expected", list(TABLE.items()))
def test_each_name_means_what_it_says(name, expected) -> None:
    got = classify(name)
    assert (got[0] if got else None) == expected, (name, got)
    if got:
        assert got[1]  # says why


def _engine_reads(folder: Path, names) -> dict:
    """Sequence key -> name, as the engine's discovery finds files of these names in ``folder``."""
    folder.mkdir()
    for name in names:
        (folder / f"{name}.nii.gz").write_bytes(b"")  # discovery reads names only
    case = find_case(folder, require_all=False)
    return {k: strip(p.name) for k, p in case.sequences.items()}


def strip(file_name: str) -> str:
    return file_name[: -len(".nii.gz")]


def test_slicer_and_engine_give_the_same_answer_for_the_whole_table(tmp_path: Path) -> None:
    """Name by name: the Slicer volume matching and the engine's discovery of a file of that name agree."""
    for i, name in enumerate(TABLE):
        if "*" in name:  # not a file name; the volume matching alone
            assert assign_volumes([name]) == dict.fromkeys(SEQUENCES)
            continue
        engine = _engine_reads(tmp_path / f"case{i}", [name])
        slicer_side = {k: v for k, v in assign_volumes([name]).items() if v is not None}
        assert engine == slicer_side, name
        expected = TABLE[name]
        assert slicer_side == ({expected: name} if expected in SEQUENCES else {}), name


@pytest.mark.parametrize("names,expected", [
    # the Slicer bug: a post-contrast image went in as native T1, MPRAGE/fla/T2 TSE were not recognised
    (["T1+C", "MPRAGE", "fla", "T2 TSE"], {"t1n": "MPRAGE", "t1c": "T1+C", "t2w": "T2 TSE", "t2f": "fla"}),
    (["AX T1 PRE", "AX T1 POST GD FLAIR", "AX T2 FSE", "AX T2 FLAIR", "Ax DWI", "ADC"],
     {"t1n": "AX T1 PRE", "t1c": "AX T1 POST GD FLAIR", "t2w": "AX T2 FSE", "t2f": "AX T2 FLAIR"}),
    (["UPENN-GBM-00006_11_FLAIR", "UPENN-GBM-00006_11_T1", "UPENN-GBM-00006_11_T1GD", "UPENN-GBM-00006_11_T2",
      "UPENN-GBM-00006_11_segm"],
     {"t1n": "UPENN-GBM-00006_11_T1", "t1c": "UPENN-GBM-00006_11_T1GD", "t2w": "UPENN-GBM-00006_11_T2",
      "t2f": "UPENN-GBM-00006_11_FLAIR"}),
    (["BraTS18_1_t1", "BraTS18_1_t1ce", "BraTS18_1_t2", "BraTS18_1_flair"],
     {"t1n": "BraTS18_1_t1", "t1c": "BraTS18_1_t1ce", "t2w": "BraTS18_1_t2", "t2f": "BraTS18_1_flair"}),
    (["T1 native", "T1 Gd", "T2-FLAIR", "T2"], {"t1n": "T1 native", "t1c": "T1 Gd", "t2w": "T2", "t2f": "T2-FLAIR"}),
    (["sub-01_T1w", "sub-01_ce-gadolinium_T1w", "sub-01_FLAIR"],
     {"t1n": "sub-01_T1w", "t1c": "sub-01_ce-gadolinium_T1w", "t2w": None, "t2f": "sub-01_FLAIR"}),
    (["MR Head", "segmentation"], dict.fromkeys(SEQUENCES)),
])
def test_whole_exams_are_assigned_alike_in_slicer_and_the_engine(tmp_path: Path, names, expected) -> None:
    assert assign_volumes(names) == expected
    engine = _engine_reads(tmp_path / "exam", names)
    assert engine == {k: v for k, v in expected.items() if v is not None}


def test_each_volume_is_used_once_and_the_first_loaded_wins() -> None:
    got = assign_volumes(["T1 Gd", "T1+C", "t1"])
    assert got == {"t1n": "t1", "t1c": "T1 Gd", "t2w": None, "t2f": None}


def test_upenn_label_maps_pair_by_case_id(tmp_path: Path) -> None:
    """``UPENN-..._segm`` is a label map of case ``UPENN-...`` (it was taken for a case named ``..._segm``)."""
    import numpy as np
    import SimpleITK as sitk

    for folder in ("pred", "ref"):
        (tmp_path / folder).mkdir()
    image = sitk.GetImageFromArray(np.zeros((4, 4, 4), np.uint8))
    sitk.WriteImage(image, str(tmp_path / "ref" / "UPENN-GBM-00006_11_segm.nii.gz"))
    sitk.WriteImage(image, str(tmp_path / "pred" / "UPENN-GBM-00006_11.nii.gz"))
    assert list(find_label_maps(tmp_path / "ref")) == ["UPENN-GBM-00006_11"]
    assert list(find_label_maps(tmp_path / "pred")) == ["UPENN-GBM-00006_11"]


def test_reference_rule_and_missing_rule() -> None:
    assert reference_for(["t2f", "t1c", "t1n"]) == "t1c"
    assert reference_for(["t2f", "t2w"]) == "t2w"  # the first in channel order
    assert reference_for(["t2f", "t1n"], wanted="t2f") == "t2f"
    with pytest.raises(ValueError):
        reference_for([])
    assert missing(["t1c", "t2w"]) == ["t1n", "t2f"]
    assert missing(["t1c", "t2w"], allowed=["t1n"]) == ["t2f"]
    assert missing(["t1c"], needed=("t1c",)) == []
    assert missing([], allowed=SEQUENCES) == list(SEQUENCES)  # at least one image, whatever is allowed


def test_the_slicer_module_matches_volumes_with_the_engine_vocabulary() -> None:
    """The module's assignInputs calls voxmmsd.sequences.assign_volumes; no Slicer-side copy of the matching."""
    tree = ast.parse((MODULE_DIR / "VoxMMSDSegmentationLib" / "logic.py").read_text())  # where the Logic lives
    assign = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "assignInputs")
    imports = [(n.module, a.name) for n in ast.walk(assign) if isinstance(n, ast.ImportFrom) for a in n.names]
    assert ("voxmmsd.sequences", "assign_volumes") in imports
    assert not (MODULE_DIR / "VoxMMSDSegmentationLib" / "naming.py").exists()


def test_the_vocabulary_imports_without_numpy_or_torch() -> None:
    code = ("import sys\nfor m in ('numpy', 'torch', 'SimpleITK'): sys.modules[m] = None\n"
            "import voxmmsd.sequences as s\nprint(s.assign_volumes(['T1+C'])['t1c'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "T1+C"
