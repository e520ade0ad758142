"""The cohort folder: generated case ids, add (checked, prepared, atomic), case.json, edits, list, remove, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from voxmmsd import synthetic
from voxmmsd.cli.main import main
from voxmmsd.cohort import layout
from voxmmsd.cohort.add import AddOptions, add_case
from voxmmsd.cohort.edits import changed_voxels, edit_statistics, summary_text, was_edited
from voxmmsd.errors import InputError
from voxmmsd.io.discovery import find_case
from voxmmsd.io.geometry import Geometry
from voxmmsd.io.labels import LEGACY, from_internal

OFF = AddOptions(register="off", skull_strip="off")


@pytest.fixture
def patient_case(tmp_path: Path) -> Path:
    """A case whose folder and file names carry a patient's name (they must never reach the cohort)."""
    folder = tmp_path / "Doe_Jane_1970"
    synthetic.write_case(folder, "Doe_Jane_1970", seed=3)
    return folder


def test_case_ids_are_generated_numbered_and_never_a_path():
    first = layout.new_case_id([])
    assert layout.CASE_ID.match(first) and first.startswith("case0001-")
    nxt = layout.new_case_id([first, "case0007-abcdef", "notacase"])
    assert nxt.startswith("case0008-")
    assert len({layout.new_case_id([]) for _ in range(20)}) == 20  # random suffix: two adds never collide
    for bad in ("../case0001-abcdef", "case0001-abcdef/..", "Doe_Jane", "case1-abcdef"):
        with pytest.raises(InputError, match="not a cohort case id"):
            layout.check_case_id(bad)


def test_a_folder_holding_other_things_never_becomes_a_cohort(tmp_path: Path):
    busy = tmp_path / "mydata"
    busy.mkdir()
    (busy / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="not empty"):
        layout.open_cohort(busy, create=True)
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt"]
    with pytest.raises(InputError, match="not a VoxMMSD cohort"):
        layout.open_cohort(tmp_path / "nothing-here")
    made = layout.open_cohort(tmp_path / "new", create=True)
    assert json.loads(made.file.read_text())["format"] == layout.FORMAT and made.cases_dir.is_dir()


def test_add_keeps_voxels_and_grid_and_writes_brats2023_names(tmp_path: Path, patient_case: Path):
    files = find_case(patient_case)
    record = add_case(tmp_path / "cohort", files, options=OFF)
    cohort = layout.open_cohort(tmp_path / "cohort")
    cid = record["case_id"]
    assert layout.case_ids(cohort) == [cid]
    written = cohort.case_files(cid)
    assert sorted(p.name for p in cohort.case_dir(cid).iterdir()) == sorted(
        [f"{cid}-{k}.nii.gz" for k in ("t1n", "t1c", "t2w", "t2f", "seg")] + ["case.json"])
    for key in ("t1n", "t1c", "t2w", "t2f"):
        src, out = sitk.ReadImage(str(files.sequences[key])), sitk.ReadImage(str(written[key]))
        np.testing.assert_array_equal(sitk.GetArrayFromImage(out), sitk.GetArrayFromImage(src))
        assert out.GetPixelID() == src.GetPixelID() and Geometry.of(out).same_as(Geometry.of(src), 1e-6)
    seg = sitk.ReadImage(str(written["label"]))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(seg), sitk.GetArrayFromImage(sitk.ReadImage(str(files.label))))
    assert Geometry.of(seg).same_as(Geometry.of(sitk.ReadImage(str(files.sequences["t1c"]))), 1e-6)
    # the cohort is an ordinary labelled data set in BraTS 2023 names
    again = find_case(cohort.case_dir(cid))
    assert again.case_id == cid and again.label == written["label"]
    # nothing in the cohort carries the patient's name
    for path in cohort.root.rglob("*"):
        assert "Doe" not in path.name and "Jane" not in path.name
        if path.suffix == ".json":
            assert "Doe" not in path.read_text() and "Jane" not in path.read_text()
    assert record["edited"] is None and record["proposed_by"] is None
    assert record["volumes_ml"]["WT"] > 0 and record["grid"]["size"] == list(Geometry.of(seg).size)
    assert not list(cohort.incoming_dir.iterdir())


def test_legacy_labels_are_converted_and_the_edits_recorded(tmp_path: Path):
    paths = synthetic.write_case(tmp_path / "c", "c", seed=1, label_convention=LEGACY)
    truth = synthetic.sample_label(synthetic.random_phantom(1), synthetic.default_geometry())
    proposal = truth.copy()
    proposal[truth == 3] = 2  # the model called the enhancing rim oedema ...
    extra = np.zeros_like(truth, dtype=bool)
    extra[2:5, 2:5, 2:5] = True
    proposal[extra] = 2  # ... and drew a blob the reviewer erased
    geometry = Geometry.of(sitk.ReadImage(str(paths["t1c"])))
    prop_path = tmp_path / "proposal.nii.gz"
    sitk.WriteImage(geometry.apply(sitk.GetImageFromArray(proposal)), str(prop_path))
    record = add_case(tmp_path / "cohort", find_case(tmp_path / "c"), proposal=prop_path,
                      proposed_by={"id": "m", "version": "1.0"}, options=OFF)
    label = sitk.GetArrayFromImage(sitk.ReadImage(str(layout.open_cohort(tmp_path / "cohort")
                                                      .case_files(record["case_id"])["label"])))
    np.testing.assert_array_equal(label, truth)  # legacy 4 -> 3
    assert np.array_equal(from_internal(label, LEGACY), sitk.GetArrayFromImage(sitk.ReadImage(str(paths["label"]))))
    assert record["label_convention_given"] == LEGACY and record["edited"] is True
    et, snfh = record["edits"]["ET"], record["edits"]["SNFH"]
    assert et["added_voxels"] == int((truth == 3).sum()) and et["removed_voxels"] == 0
    assert snfh["removed_voxels"] == int(((truth == 3) | (extra & (truth != 2))).sum())
    assert record["proposed_by"] == {"id": "m", "version": "1.0"}
    assert "ET +" in summary_text(record)


def test_bad_input_is_refused_naming_the_file_and_leaves_nothing(tmp_path: Path, synthetic_case: Path):
    files = find_case(synthetic_case)
    other = synthetic.default_geometry(spacing=(1.0, 1.0, 2.0), shape_xyz=(48, 56, 20))
    moved = tmp_path / "seg_on_other_grid.nii.gz"
    sitk.WriteImage(other.apply(sitk.GetImageFromArray(np.ones(other.shape, np.uint8))), str(moved))
    with pytest.raises(InputError, match="seg_on_other_grid.nii.gz.*not on the T1c image's grid"):
        add_case(tmp_path / "cohort", type(files)(files.case_id, files.sequences, moved), options=OFF)
    empty = tmp_path / "empty.nii.gz"
    ref = sitk.ReadImage(str(files.label))
    sitk.WriteImage(Geometry.of(ref).apply(sitk.GetImageFromArray(np.zeros(Geometry.of(ref).shape, np.uint8))),
                    str(empty))
    with pytest.raises(InputError, match="empty.nii.gz is empty"):
        add_case(tmp_path / "cohort", type(files)(files.case_id, files.sequences, empty), options=OFF)
    no_flair = {k: v for k, v in files.sequences.items() if k != "t2f"}
    with pytest.raises(InputError, match="needs all four sequences"):
        add_case(tmp_path / "cohort", type(files)(files.case_id, no_flair, files.label), options=OFF)
    cohort = layout.open_cohort(tmp_path / "cohort")
    assert layout.case_ids(cohort) == []
    assert not cohort.incoming_dir.exists() or not any(cohort.incoming_dir.iterdir())


def test_sequences_on_other_grids_are_kept_on_the_t1c_grid(tmp_path: Path):
    t1c = synthetic.default_geometry()
    thick = synthetic.default_geometry(shape_xyz=(40, 46, 14), spacing=(1.2, 1.2, 3.0))
    synthetic.write_case(tmp_path / "c", "c", seed=2, geometry=t1c, grids={"t2f": thick})
    record = add_case(tmp_path / "cohort", find_case(tmp_path / "c"), options=OFF)
    written = layout.open_cohort(tmp_path / "cohort").case_files(record["case_id"])
    for key in ("t1n", "t1c", "t2w", "t2f", "label"):
        assert Geometry.of(sitk.ReadImage(str(written[key]))).same_as(t1c, 1e-5), key
    assert record["preparation"]["registered_or_resampled"] == ["t2f"]


def test_edit_statistics_count_added_and_removed_voxels():
    before = np.array([0, 2, 2, 3, 3, 1, 0], np.uint8)
    after = np.array([2, 2, 3, 3, 0, 1, 0], np.uint8)
    stats = edit_statistics(before, after, voxel_ml=0.5)
    assert stats["SNFH"] == {"proposed_voxels": 2, "final_voxels": 2, "added_voxels": 1, "removed_voxels": 1,
                             "changed_ml": 1.0, "final_ml": 1.0}
    assert stats["ET"]["added_voxels"] == 1 and stats["ET"]["removed_voxels"] == 1
    assert stats["NETC"]["added_voxels"] == 0 and "RC" not in stats
    assert was_edited(stats, True) is True and changed_voxels(stats) == 4
    same = edit_statistics(before, before, 1.0)
    assert was_edited(same, True) is False and summary_text({"edited": False}) == "accepted as proposed"
    assert was_edited(edit_statistics(None, after, 1.0), False) is None


def test_cli_add_list_remove(tmp_path: Path, synthetic_dataset: Path, capsys):
    cohort = tmp_path / "cohort"
    assert main(["-q", "cohort", "add", str(cohort), str(synthetic_dataset / "case000"), "--skull-strip", "off"]) == 0
    c1 = synthetic_dataset / "case001"
    assert main(["-q", "cohort", "add", str(cohort), "--t1n", str(c1 / "case001-t1n.nii.gz"),
                 "--t1c", str(c1 / "case001-t1c.nii.gz"), "--t2w", str(c1 / "case001-t2w.nii.gz"),
                 "--t2f", str(c1 / "case001-t2f.nii.gz"), "--seg", str(c1 / "case001-seg.nii.gz"),
                 "--proposal", str(c1 / "case001-seg.nii.gz"), "--proposed-by", "voxmmsd-brats-default@2.1.0",
                 "--register", "off", "--skull-strip", "off"]) == 0
    capsys.readouterr()
    assert main(["-q", "cohort", "list", str(cohort), "--json"]) == 0
    cases = json.loads(capsys.readouterr().out)
    assert [c["edited"] for c in cases] == [None, False]
    assert cases[1]["proposed_by"] == {"id": "voxmmsd-brats-default", "version": "2.1.0"}
    assert main(["-q", "cohort", "list", str(cohort)]) == 0
    text = capsys.readouterr().out
    assert "2 case(s)" in text and "accepted as proposed" in text and "WT " in text
    (layout.open_cohort(cohort).case_dir(cases[0]["case_id"]) / "case.json").write_text("{damaged")
    assert main(["-q", "cohort", "list", str(cohort)]) == 0
    assert "DAMAGED" in capsys.readouterr().out
    assert main(["-q", "cohort", "remove", str(cohort), cases[0]["case_id"]]) == 0
    assert layout.case_ids(layout.open_cohort(cohort)) == [cases[1]["case_id"]]
    assert main(["-q", "cohort", "remove", str(cohort), cases[0]["case_id"]]) == 1  # gone: a clear error
    assert main(["-q", "cohort", "list", str(tmp_path / "nope")]) == 1
