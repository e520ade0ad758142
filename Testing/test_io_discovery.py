"""Case and data-set discovery for every naming convention."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from voxmmsd import synthetic
from voxmmsd.errors import InputError
from voxmmsd.io.discovery import case_from_paths, find_case, find_dataset
from voxmmsd.io.reader import load_case
from voxmmsd.sequences import SEQUENCES, classify_clinical, classify_name


@pytest.mark.parametrize("naming", ["brats2023", "legacy", "short"])
def test_find_case_each_convention(tmp_path: Path, naming: str) -> None:
    written = synthetic.write_case(tmp_path / "c", "BraTS-X-1", seed=1, naming=naming)
    case = find_case(tmp_path / "c")
    assert set(case.sequences) == set(SEQUENCES)
    for seq in SEQUENCES:
        assert case.sequences[seq] == written[seq]
    assert case.label == written["label"]


def test_nnunet_dataset(tmp_path: Path) -> None:
    root = synthetic.write_dataset(tmp_path / "nn", n=3, naming="nnunet")
    ds = find_dataset(root, require_labels=True)
    assert ds.layout == "nnunet" and len(ds) == 3
    case = ds.by_id()["case001"]
    assert case.sequences["t1c"].name == "case001_0001.nii.gz"
    assert case.sequences["t2f"].name == "case001_0003.nii.gz"
    assert case.label is not None and case.label.parent.name == "labelsTr"


def test_folder_dataset_and_single_case(tmp_path: Path) -> None:
    root = synthetic.write_dataset(tmp_path / "ds", n=2, naming="legacy")
    ds = find_dataset(root)
    assert [c.case_id for c in ds.cases] == ["case000", "case001"]
    single = find_dataset(root / "case000")
    assert single.layout == "single" and len(single) == 1


def test_classify_names() -> None:
    assert classify_name("BraTS-GLI-00001-000-t2f") == "t2f"
    assert classify_name("Brats18_2013_3_1_t1ce") == "t1c"
    assert classify_name("Brats18_2013_3_1_t1") == "t1n"
    assert classify_name("flair") == "t2f"
    assert classify_name("x_0000") == "t1n"
    assert classify_name("x_0003") == "t2f"
    assert classify_name("x_seg") == "label"
    assert classify_name("UPENN-GBM-00006_11_segm") == "label"  # UPENN-GBM's own label name
    assert classify_name("UPENN-GBM-00006_11_T1GD") == "t1c"
    assert classify_name("notes") is None


def test_missing_sequence_is_named(tmp_path: Path) -> None:
    written = synthetic.write_case(tmp_path / "c", "c1", seed=0)
    written["t2f"].unlink()
    with pytest.raises(InputError, match=r"Case 'c' .* has no T2-FLAIR") as err:
        find_case(tmp_path / "c")
    assert str(tmp_path / "c") in str(err.value)


def test_duplicate_sequence_is_named(tmp_path: Path) -> None:
    written = synthetic.write_case(tmp_path / "c", "c1", seed=0)
    dup = tmp_path / "c" / "other_t1ce.nii.gz"
    dup.write_bytes(written["t1c"].read_bytes())
    with pytest.raises(InputError, match="More than one T1 post-contrast"):
        find_case(tmp_path / "c")


def test_explicit_paths(tmp_path: Path) -> None:
    written = synthetic.write_case(tmp_path / "c", "pt7", seed=0, naming="brats2023")
    case = case_from_paths({s: written[s] for s in SEQUENCES})
    assert case.case_id == "pt7"
    with pytest.raises(InputError, match="not found"):
        case_from_paths({"t1c": tmp_path / "nope.nii.gz"})


def test_empty_dataset_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="No cases found"):
        find_dataset(tmp_path / "empty")


def test_dataset_requiring_labels(tmp_path: Path) -> None:
    root = synthetic.write_dataset(tmp_path / "ds", n=2)
    synthetic.write_case(root / "case009", "case009", seed=9, with_label=False)
    with pytest.raises(InputError, match="no label map"):
        find_dataset(root, require_labels=True)


def _write_dicom_series(image: sitk.Image, folder: Path, description: str = "") -> None:
    folder.mkdir(parents=True)
    image = sitk.Cast(image, sitk.sitkInt16)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    series_uid = "1.2.826.0.1.3680043.2.1125.1.99"
    direction = image.GetDirection()
    for k in range(image.GetDepth()):
        sl = image[:, :, k]
        for tag, value in (("0008|0060", "MR"), ("0020|000e", series_uid), ("0020|0013", str(k + 1)),
                           ("0020|0037", "\\".join(str(v) for v in (direction[0], direction[3], direction[6],
                                                                    direction[1], direction[4], direction[7]))),
                           ("0020|0032", "\\".join(str(v) for v in image.TransformIndexToPhysicalPoint((0, 0, k)))),
                           ("0028|0030", f"{image.GetSpacing()[1]}\\{image.GetSpacing()[0]}"),
                           ("0018|0050", str(image.GetSpacing()[2])), ("0008|103e", description)):
            sl.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice{k:03d}.dcm"))
        writer.Execute(sl)


def test_dicom_series_subfolder(tmp_path: Path) -> None:
    written = synthetic.write_case(tmp_path / "c", "d1", seed=0)
    t1c = sitk.ReadImage(str(written["t1c"]))
    written["t1c"].unlink()
    _write_dicom_series(t1c, tmp_path / "c" / "t1c")
    files = find_case(tmp_path / "c")
    assert files.sequences["t1c"].is_dir()
    case = load_case(files)
    assert case.image.shape[1:] == t1c.GetSize()[::-1]
    np.testing.assert_allclose(case.geometry.spacing, t1c.GetSpacing(), atol=1e-4)
    np.testing.assert_allclose(case.geometry.origin, t1c.GetOrigin(), atol=1e-3)
    np.testing.assert_array_equal(case.channel("t1c"), sitk.GetArrayFromImage(t1c))


def test_grouped_dataset_and_duplicate_ids(tmp_path: Path) -> None:
    synthetic.write_dataset(tmp_path / "all" / "siteA", n=2)
    synthetic.write_case(tmp_path / "all" / "siteB" / "b1", "b1", seed=7)
    ds = find_dataset(tmp_path / "all")
    assert sorted(c.case_id for c in ds.cases) == ["b1", "case000", "case001"]
    synthetic.write_case(tmp_path / "all" / "siteB" / "case000", "case000", seed=8)
    with pytest.raises(InputError, match="Two cases are named 'case000'"):
        find_dataset(tmp_path / "all")


CLINICAL = {
    "t2f": ["fla", "FLAIR", "AX T2 FLAIR", "3D FLAIR", "t2_tirm_tra_dark-fluid", "Sag_FLAIR_SPACE"],
    "t1c": ["T1+C", "T1 POST GAD", "T1CE", "AX T1 POST GD", "SAG T1 C+", "COR T1 +C", "t1_se_tra_KM",
            "T1W_3D_TFE_GADO", "MPRAGE POST", "Ax Post Gd"],
    "t1n": ["MPRAGE", "t1_mprage_sag_p2_iso", "AX T1 PRE", "T1W_3D_TFE", "T1 SE native", "FSPGR BRAVO"],
    "t2w": ["T2 TSE", "T2W_TSE", "Ax T2 FSE", "t2_tse_tra_512"],
    None: ["Ax DWI", "ADC", "T2*", "SWI", "localizer", "perfusion DSC", "notes", "report"],
}


@pytest.mark.parametrize("key,names", list(CLINICAL.items()))
def test_clinical_names(key, names) -> None:
    for name in names:
        got = classify_clinical(name)
        assert (got[0] if got else None) == key, name
        if got:
            assert got[1]  # says why


def test_a_clinical_export_is_found_and_tells_what_it_matched(tmp_path: Path) -> None:
    written = synthetic.write_case(tmp_path / "src", "x", seed=2)
    folder = tmp_path / "exam"
    folder.mkdir()
    names = {"t1n": "patient_MPRAGE", "t1c": "patient_T1+C", "t2w": "patient_T2 TSE", "t2f": "patient_fla"}
    for key, name in names.items():
        written[key].rename(folder / f"{name}.nii.gz")
    written["t1n"] = folder / "unused"
    (folder / "patient_ADC.nii.gz").write_bytes((folder / "patient_fla.nii.gz").read_bytes())  # not a sequence
    files = find_case(folder)
    assert {k: p.name for k, p in files.sequences.items()} == {k: f"{v}.nii.gz" for k, v in names.items()}
    assert "FLAIR (fla)" in files.matches["t2f"] and "patient_fla.nii.gz" in files.matches["t2f"]
    assert "T1 with contrast" in files.matches["t1c"]
    # two T1c candidates: refused, naming both, with the way out
    (folder / "patient_T1 POST GAD.nii.gz").write_bytes((folder / "patient_T1+C.nii.gz").read_bytes())
    with pytest.raises(InputError, match="More than one T1 post-contrast"):
        find_case(folder)


def test_dicom_series_description_names_the_sequence(tmp_path: Path) -> None:
    written = synthetic.write_case(tmp_path / "c", "d2", seed=0)
    flair = sitk.ReadImage(str(written["t2f"]))
    written["t2f"].unlink()
    _write_dicom_series(flair, tmp_path / "c" / "series_7", description="AX T2 FLAIR FS")
    files = find_case(tmp_path / "c")
    assert files.sequences["t2f"].name == "series_7"
    assert "DICOM series description 'AX T2 FLAIR FS'" in files.matches["t2f"]
