"""The QC picture and the PNG writer, read back with an independent decoder (Pillow)."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from voxmmsd.infer.qc import PANEL_HEIGHT, qc_picture, scale_nearest, tumour_centre, write_qc_png
from voxmmsd.io.labels import LABEL_TABLE
from voxmmsd.io.png import encode_png, write_png


def test_png_round_trips_rgb_and_grey_with_text(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (7, 11, 3), dtype=np.uint8)
    grey = rng.integers(0, 256, (5, 3), dtype=np.uint8)
    write_png(tmp_path / "rgb.png", rgb, {"Title": "case 7"})
    write_png(tmp_path / "grey.png", grey)
    with Image.open(tmp_path / "rgb.png") as im:
        assert im.mode == "RGB" and im.text["Title"] == "case 7"
        np.testing.assert_array_equal(np.asarray(im), rgb)
    with Image.open(tmp_path / "grey.png") as im:
        assert im.mode == "L"
        np.testing.assert_array_equal(np.asarray(im), grey)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_png_chunks_carry_valid_crcs() -> None:
    data = encode_png(np.zeros((2, 2), np.uint8), {"a": "b"})
    pos = 8
    kinds = []
    while pos < len(data):
        n = int.from_bytes(data[pos:pos + 4], "big")
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        assert int.from_bytes(data[pos + 8 + n:pos + 12 + n], "big") == zlib.crc32(kind + body) & 0xFFFFFFFF
        kinds.append(kind)
        pos += 12 + n
    assert kinds == [b"IHDR", b"tEXt", b"IDAT", b"IEND"]


@pytest.mark.parametrize("bad", [np.zeros((2, 2), np.float32), np.zeros((2, 2, 4), np.uint8),
                                 np.zeros((0, 3), np.uint8)])
def test_png_refuses_what_it_cannot_encode(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        encode_png(bad)


def test_scale_nearest_makes_square_millimetres() -> None:
    plane = np.arange(20, dtype=np.uint8).reshape(4, 5)  # 4 rows of 3 mm, 5 columns of 1 mm
    out = scale_nearest(plane, 3.0, 1.0, 12)
    assert out.shape == (12, 5)
    np.testing.assert_array_equal(out[::3], plane)


def _case() -> tuple:
    image = np.zeros((20, 30, 40), np.float32)
    image[2:18, 3:27, 4:36] = np.linspace(10, 100, 32, dtype=np.float32)  # a "brain" with a gradient
    label = np.zeros(image.shape, np.uint8)
    label[8:12, 10:16, 20:30] = 2  # oedema
    label[9:11, 12:14, 24:26] = 3  # enhancing core
    return image, label


def test_qc_picture_cuts_through_the_tumour_and_colours_labels() -> None:
    image, label = _case()
    assert tumour_centre(label, image) == (10, 12, 24)  # centre of mass, rounded half to even
    pic = qc_picture(image, label, (1.0, 1.0, 2.0))
    assert pic.dtype == np.uint8 and pic.shape[0] == PANEL_HEIGHT and pic.shape[2] == 3
    colours = {info.value: np.asarray(info.color) * 255 for info in LABEL_TABLE}
    # the axial panel (first, 40 columns of 1 mm over 30 rows of 1 mm) shows the enhancing core's colour
    axial = pic[:, : int(round(PANEL_HEIGHT * 40 / 30))]
    scale = PANEL_HEIGHT / 30
    core = axial[int(12.5 * scale), int(24.5 * scale)].astype(float)
    oedema = axial[int(11 * scale), int(21 * scale)].astype(float)
    brain = axial[int(5 * scale), int(8 * scale)].astype(float)
    assert np.allclose(brain, brain[0])  # grey outside the tumour
    for pixel, value in ((core, 3), (oedema, 2)):
        assert not np.allclose(pixel, pixel[0])  # coloured
        assert np.argmax(pixel) == np.argmax(colours[value])


def test_qc_picture_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError):
        qc_picture(np.zeros((4, 4, 4)), np.zeros((4, 4, 5), np.uint8), (1, 1, 1))


def test_write_qc_png_records_title_and_legend(tmp_path: Path) -> None:
    image, label = _case()
    path = write_qc_png(tmp_path / "qc.png", image, label, (1.0, 1.0, 2.0), "case000: model 1.0")
    with Image.open(path) as im:
        assert im.text["Title"] == "case000: model 1.0"
        assert "axial z=10" in im.text["Description"] and "Enhancing" in im.text["Description"]
        assert im.size[1] == PANEL_HEIGHT
