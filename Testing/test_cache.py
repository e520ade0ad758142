"""The preprocessed-case cache: build, reuse, rebuild, corruption."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from voxmmsd import synthetic
from voxmmsd.data.cache import build_cache, load_cache, settings_key
from voxmmsd.errors import InputError
from voxmmsd.io.discovery import find_dataset
from voxmmsd.preprocessing import PreprocessConfig


def test_build_reuse_and_rebuild(tmp_path: Path) -> None:
    root = synthetic.write_dataset(tmp_path / "ds", n=2, label_convention="legacy")
    ds = find_dataset(root)
    cfg = PreprocessConfig()
    cases = build_cache(ds, tmp_path / "cache", cfg, show_progress=False)
    assert [c.case_id for c in cases] == ["case000", "case001"]
    c0 = cases[0]
    assert c0.image.dtype == np.uint8 and c0.image.shape[0] == 4
    assert c0.meta["label_convention"] == "legacy"
    assert set(np.unique(c0.label)) <= {0, 1, 2, 3} and 3 in np.unique(c0.label)
    folder = tmp_path / "cache" / settings_key(cfg, True)
    stamp = (folder / "case000.image.npy").stat().st_mtime_ns
    time.sleep(0.01)
    build_cache(ds, tmp_path / "cache", cfg, show_progress=False)
    assert (folder / "case000.image.npy").stat().st_mtime_ns == stamp  # reused
    other = PreprocessConfig(percentile=99.0)
    build_cache(ds, tmp_path / "cache", other, show_progress=False)
    assert (tmp_path / "cache" / settings_key(other, True)).is_dir()  # new settings, new folder
    assert len(load_cache(folder)) == 2


def test_corrupt_cache_is_reported(tmp_path: Path) -> None:
    root = synthetic.write_dataset(tmp_path / "ds", n=1)
    cfg = PreprocessConfig()
    build_cache(find_dataset(root), tmp_path / "cache", cfg, show_progress=False)
    folder = tmp_path / "cache" / settings_key(cfg, True)
    (folder / "case000.image.npy").write_bytes(b"garbage")
    with pytest.raises(InputError, match=r"case000\.image\.npy.*Delete the folder"):
        load_cache(folder)


def test_prepared_cache_as_data(tmp_path: Path) -> None:
    from voxmmsd.data.cache import is_cache_folder, open_prepared

    root = synthetic.write_dataset(tmp_path / "ds", n=2)
    synthetic.write_case(root / "unlabelled", "unlabelled", seed=5, with_label=False)
    cfg = PreprocessConfig()
    build_cache(find_dataset(root), tmp_path / "cache", cfg, show_progress=False)
    folder = tmp_path / "cache" / settings_key(cfg, True)
    assert is_cache_folder(folder) and not is_cache_folder(root)
    assert len(open_prepared(folder, cfg)) == 3
    assert [c.case_id for c in open_prepared(folder, cfg, require_labels=True)] == ["case000", "case001"]
    with pytest.raises(InputError, match="built with preprocessing"):
        open_prepared(folder, PreprocessConfig(percentile=99.0))
