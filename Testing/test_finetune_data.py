"""Training patches: windows, foreground over-sampling, sequence dropout, MONAI augmentation, the stream."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from voxmmsd.data.cache import build_cache
from voxmmsd.finetune.data import (
    PatchStream,
    class_points,
    crop_patch,
    drop_sequences,
    make_loader,
    patch_start,
    sample_center,
)
from voxmmsd.io.discovery import find_dataset
from voxmmsd.preprocessing import PreprocessConfig


def test_patch_start_stays_inside_or_centres() -> None:
    assert patch_start((0, 5, 39), (40, 40, 40), (16, 16, 16)) == (0, 0, 24)
    assert patch_start((20, 20, 20), (40, 40, 40), (16, 16, 16)) == (12, 12, 12)
    assert patch_start((3, 3, 3), (10, 40, 40), (16, 16, 16))[0] == -3  # smaller than the patch: padded


def test_crop_patch_pads_with_zeros() -> None:
    a = np.arange(2 * 4 * 5 * 6, dtype=np.int32).reshape(2, 4, 5, 6) + 1
    p = crop_patch(a, (-2, 1, 3), (8, 3, 4))
    assert p.shape == (2, 8, 3, 4)
    assert np.array_equal(p[:, 2:6, :, :3], a[:, :, 1:4, 3:6])
    assert (p[:, :2] == 0).all() and (p[:, 6:] == 0).all() and (p[..., 3] == 0).all()


def test_sample_center_foreground_ratio() -> None:
    label = np.zeros((20, 20, 20), np.uint8)
    label[2:4, 2:4, 2:4] = 3
    label[10, 10, 10] = 1
    rng = np.random.default_rng(0)
    pts = class_points(label, 4, rng)
    assert set(pts) == {1, 3}
    centers = [sample_center(label.shape, pts, rng, 1.0) for _ in range(200)]
    assert all(label[c] > 0 for c in centers)
    hits = [label[c] for c in centers]
    assert 60 < sum(h == 1 for h in hits) < 140  # classes drawn evenly, not by size
    rand = [sample_center(label.shape, pts, rng, 0.0) for _ in range(200)]
    assert sum(label[c] > 0 for c in rand) < 10


def test_drop_sequences_zeroes_whole_channels_never_all() -> None:
    rng = np.random.default_rng(1)
    img = np.ones((4, 3, 3, 3), np.float32)
    seen = set()
    for _ in range(100):
        out, dropped = drop_sequences(img, rng, 1.0)
        assert 1 <= len(dropped) <= 3
        assert (out[dropped] == 0).all() and (np.delete(out, dropped, 0) == 1).all()
        seen.update(dropped)
    assert seen == {0, 1, 2, 3} and (img == 1).all()
    assert drop_sequences(img, rng, 0.0)[1] == []


@pytest.fixture
def cached(synthetic_dataset: Path, tmp_path: Path):
    cases = build_cache(find_dataset(synthetic_dataset), tmp_path / "cache", PreprocessConfig(), "auto",
                        show_progress=False)
    return cases, next(p for p in (tmp_path / "cache").iterdir() if p.is_dir())


def test_stream_patches_match_the_case_without_augmentation(cached) -> None:
    cases, folder = cached
    stream = PatchStream(folder, [cases[0].case_id], (32, 32, 32), 4, foreground_ratio=1.0, augment=False, seed=2)
    item = next(iter(stream))
    assert item["image"].shape == (4, 32, 32, 32) and item["label"].shape == (32, 32, 32)
    assert item["image"].dtype.is_floating_point and 0 <= item["image"].min() and item["image"].max() <= 1
    assert int(item["label"].max()) > 0  # centred on tumour
    # the patch is a true window of the cached case: find it back among all windows
    img = cases[0].image.astype(np.float32) / 255
    lab = np.asarray(cases[0].label)
    want = item["label"].numpy()
    found = False
    for z in range(lab.shape[0] - 31):
        for y in range(lab.shape[1] - 31):
            for x in range(lab.shape[2] - 31):
                if np.array_equal(lab[z:z + 32, y:y + 32, x:x + 32], want) and \
                        np.allclose(img[:, z:z + 32, y:y + 32, x:x + 32], item["image"].numpy()):
                    found = True
    assert found


def test_augmented_stream_through_loader_keeps_labels_valid(cached) -> None:
    cases, folder = cached
    stream = PatchStream(folder, [c.case_id for c in cases], (32, 32, 32), 4, augment=True,
                         sequence_dropout=0.5, seed=3)
    batch = next(iter(make_loader(stream, 2, workers=1)))
    assert batch["image"].shape == (2, 4, 32, 32, 32) and batch["label"].shape == (2, 32, 32, 32)
    assert set(np.unique(batch["label"].numpy())) <= {0, 1, 2, 3}
    a = [next(iter(PatchStream(folder, ["case000"], (32, 32, 32), 4, seed=5)))["image"] for _ in range(2)]
    assert np.array_equal(a[0].numpy(), a[1].numpy())  # seeded: reproducible


def test_channel_intensity_changes_channels_independently_and_keeps_background():
    import numpy as np
    from voxmmsd.finetune.data import channel_intensity

    rng = np.random.default_rng(3)
    img = np.zeros((4, 16, 16, 16), np.float32)
    img[:, 4:12, 4:12, 4:12] = np.linspace(0.2, 0.8, 8, dtype=np.float32)[None, :, None, None]
    out, done = channel_intensity(img, rng, 1.0)
    assert set(done) == {"0", "1", "2", "3"}
    assert not out[:, :4].any() and out.min() >= 0 and out.max() <= 1
    changes = [float(np.abs(out[c] - img[c]).mean()) for c in range(4)]
    assert len(set(round(v, 6) for v in changes)) == 4  # each channel drew its own change
    same, none = channel_intensity(img, rng, 0.0)
    assert same is img and none == {}
