import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from occo.data.io import (
    MAX_PIXELS,
    DataError,
    atomic_dir,
    atomic_path,
    load_array,
    read_image,
    read_size,
    rgb_to_gray_matlab,
    rgb_to_gray_opencv,
    save_png,
    to_float,
    to_uint8,
)

GREY16 = np.array([[0, 257, 65535], [1000, 128, 129]], dtype=np.uint16)


def test_grey8_png(tmp_path):
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(arr).save(tmp_path / "g.png")
    out = load_array(tmp_path / "g.png")
    assert out.dtype == np.uint8 and out.shape == (3, 4)
    np.testing.assert_array_equal(out, arr)
    assert out.flags.writeable


@pytest.mark.parametrize("name", ["g16.png", "g16.tif"])
def test_grey16_keeps_uint16(tmp_path, name):
    Image.fromarray(GREY16).save(tmp_path / name)
    out = load_array(tmp_path / name)
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, GREY16)
    np.testing.assert_array_equal(to_uint8(out), [[0, 1, 255], [4, 0, 1]])


def test_grey16_big_endian_tiff(tmp_path):
    im = Image.frombytes("I;16B", (3, 2), GREY16.astype(">u2").tobytes())
    im.save(tmp_path / "be.tif")
    out = load_array(tmp_path / "be.tif")
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, GREY16)


def test_int32_tiff_in_range_becomes_uint16(tmp_path):
    Image.fromarray(GREY16.astype(np.int32)).save(tmp_path / "i.tif")
    out = load_array(tmp_path / "i.tif")
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, GREY16)


def test_int32_tiff_out_of_range_fails(tmp_path):
    Image.fromarray(np.array([[0, 70000]], dtype=np.int32)).save(tmp_path / "big.tif")
    with pytest.raises(DataError, match="big.tif"):
        load_array(tmp_path / "big.tif")


def test_rgb_png(tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "c.png")
    out = load_array(tmp_path / "c.png")
    assert out.dtype == np.uint8 and out.shape == (5, 6, 3)
    np.testing.assert_array_equal(out, arr)


def test_rgba_drops_alpha(tmp_path):
    arr = np.random.default_rng(1).integers(0, 256, (4, 4, 4), dtype=np.uint8)
    Image.fromarray(arr, "RGBA").save(tmp_path / "a.png")
    np.testing.assert_array_equal(load_array(tmp_path / "a.png"), arr[..., :3])


def test_la_becomes_rgb(tmp_path):
    arr = np.stack([np.full((2, 3), 77, np.uint8), np.full((2, 3), 9, np.uint8)], -1)
    Image.fromarray(arr, "LA").save(tmp_path / "la.png")
    out = load_array(tmp_path / "la.png")
    assert out.shape == (2, 3, 3)
    assert (out == 77).all()


def test_palette_becomes_rgb(tmp_path):
    im = Image.new("P", (3, 2))
    im.putpalette([10, 20, 30, 200, 100, 50] + [0] * (256 * 3 - 6))
    im.putdata([0, 1, 0, 1, 1, 0])
    im.save(tmp_path / "p.png")
    out = load_array(tmp_path / "p.png")
    assert out.shape == (2, 3, 3)
    np.testing.assert_array_equal(out[0, 0], [10, 20, 30])
    np.testing.assert_array_equal(out[0, 1], [200, 100, 50])


def test_one_bit_becomes_0_255(tmp_path):
    im = Image.new("1", (4, 1))
    im.putdata([0, 1, 1, 0])
    im.save(tmp_path / "b.png")
    out = load_array(tmp_path / "b.png")
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, [[0, 255, 255, 0]])


@pytest.mark.parametrize("name", ["x.jpg", "x.bmp", "x.tiff"])
def test_other_formats(tmp_path, name):
    Image.fromarray(np.full((8, 8, 3), 120, np.uint8)).save(tmp_path / name)
    out = load_array(tmp_path / name)
    assert out.shape == (8, 8, 3) and abs(int(out.mean()) - 120) <= 2


def test_corrupt_file_names_path(tmp_path):
    bad = tmp_path / "noise.png"
    bad.write_bytes(np.random.default_rng(2).integers(0, 256, 500, dtype=np.uint8).tobytes())
    with pytest.raises(DataError) as err:
        load_array(bad)
    assert str(bad) in str(err.value) and "\n" not in str(err.value)


def test_truncated_png_fails(tmp_path):
    arr = np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    cut = tmp_path / "cut.png"
    cut.write_bytes(buf.getvalue()[: len(buf.getvalue()) * 6 // 10])
    with pytest.raises(DataError, match="cannot read image .*cut.png"):
        load_array(cut)


def test_missing_file_fails(tmp_path):
    with pytest.raises(DataError, match="nothere.png"):
        load_array(tmp_path / "nothere.png")


def test_to_float_scales_and_layout():
    grey = to_float(np.array([[0, 255]], np.uint8))
    assert grey.dtype == torch.float32 and grey.shape == (1, 1, 2)
    assert grey.tolist() == [[[0.0, 1.0]]]
    rgb = to_float(np.array([[[65535, 0, 32768]]], np.uint16))
    assert rgb.shape == (3, 1, 1)
    torch.testing.assert_close(rgb.flatten(), torch.tensor([1.0, 0.0, 32768 / 65535]))


def test_to_float_and_to_uint8_reject_other_dtypes():
    with pytest.raises(DataError):
        to_float(np.zeros((2, 2), np.float32))
    with pytest.raises(DataError):
        to_uint8(np.zeros((2, 2), np.int32))


def test_read_image(tmp_path):
    Image.fromarray(GREY16).save(tmp_path / "g.png")
    t = read_image(tmp_path / "g.png")
    assert t.shape == (1, 2, 3)
    assert t[0, 0, 2].item() == 1.0


def test_matlab_rgb2gray_known_values():
    px = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [100, 150, 200], [0, 0, 0]]], np.uint8)
    out = rgb_to_gray_matlab(px)
    assert out.dtype == np.uint8
    # 76.23 -> 76, 149.70 -> 150, 29.08 -> 29, 255, 140.75 -> 141, 0
    np.testing.assert_array_equal(out, [[76, 150, 29, 255, 141, 0]])


def test_matlab_rgb2gray_rounds_to_nearest():
    # weighted sums 0.587, 0.897, 0.299, 0.114*4 = 0.456: nearest, not truncated
    px = np.array([[[0, 1, 0], [3, 0, 0], [1, 0, 0], [0, 0, 4]]], np.uint8)
    np.testing.assert_array_equal(rgb_to_gray_matlab(px), [[1, 1, 0, 0]])


def test_matlab_rgb2gray_grey_unchanged():
    grey = np.array([[3, 250]], np.uint8)
    assert rgb_to_gray_matlab(grey) is grey


def test_opencv_gray_matches_cv2_float_path():
    px = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [100, 150, 200]]], np.uint8)
    out = rgb_to_gray_opencv(px)
    assert out.dtype == np.float64
    # 76.245, 149.685, 29.07, 141.0
    np.testing.assert_array_equal(out, [[76.0, 150.0, 29.0, 141.0]])
    np.testing.assert_array_equal(rgb_to_gray_opencv(np.array([[7]], np.uint8)), [[7.0]])


def test_gray_conversions_differ_somewhere():
    # The MATLAB and OpenCV weights differ in the 4th decimal: some uint8 colours round apart.
    rng = np.random.default_rng(4)
    px = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert (rgb_to_gray_matlab(px).astype(np.float64) != rgb_to_gray_opencv(px)).any()


def test_save_png_uint8_roundtrip(tmp_path):
    arr = np.random.default_rng(5).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    save_png(tmp_path / "deep" / "dir" / "x.png", arr)
    np.testing.assert_array_equal(load_array(tmp_path / "deep" / "dir" / "x.png"), arr)
    assert sorted(p.name for p in (tmp_path / "deep" / "dir").iterdir()) == ["x.png"]


def test_save_png_float_tensor_rounds_and_clamps(tmp_path):
    t = torch.tensor([[[-0.1, 0.5, 1.2, 0.2]]])
    save_png(tmp_path / "g.png", t)
    out = load_array(tmp_path / "g.png")
    assert out.shape == (1, 4)
    np.testing.assert_array_equal(out, [[0, 128, 255, 51]])
    save_png(tmp_path / "c.png", torch.ones(3, 2, 2) * 0.5)
    assert load_array(tmp_path / "c.png").shape == (2, 2, 3)
    save_png(tmp_path / "hw.png", torch.zeros(2, 3))
    assert load_array(tmp_path / "hw.png").shape == (2, 3)


def test_save_png_overwrites(tmp_path):
    save_png(tmp_path / "x.png", np.zeros((2, 2), np.uint8))
    save_png(tmp_path / "x.png", np.full((2, 2), 9, np.uint8))
    assert (load_array(tmp_path / "x.png") == 9).all()


def test_save_png_rejects_bad_input(tmp_path):
    with pytest.raises(DataError):
        save_png(tmp_path / "x.png", np.zeros((2, 2), np.uint16))
    with pytest.raises(DataError):
        save_png(tmp_path / "x.png", np.zeros((2, 2, 4), np.uint8))
    with pytest.raises(DataError):
        save_png(tmp_path / "x.png", torch.zeros(2, 2, dtype=torch.uint8))
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_keeps_old_file_on_error(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_atomic_dir_swaps_only_on_success(tmp_path):
    target = tmp_path / "ds"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "new.txt").write_text("new")
            raise RuntimeError("interrupted")
    assert [p.name for p in target.iterdir()] == ["old.txt"]
    with atomic_dir(target) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]


def _png_header_only(path, width, height):
    """A PNG whose header claims width x height grey pixels, with one tiny IDAT: a few hundred bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )
    return path


@pytest.mark.parametrize("side", [100_000, 10_000])  # past Pillow's own bomb limit; past our cap only
def test_huge_header_is_refused_before_decoding(tmp_path, side):
    path = _png_header_only(tmp_path / "huge.png", side, side)
    for read in (load_array, read_size, read_image):
        with pytest.raises(DataError) as err:
            read(path)
        msg = str(err.value)
        assert str(path) in msg and f"{MAX_PIXELS:,}" in msg and "\n" not in msg


def test_pixel_cap_is_a_parameter(tmp_path):
    save_png(tmp_path / "a.png", np.zeros((40, 48), np.uint8))
    assert read_size(tmp_path / "a.png") == (40, 48)
    assert load_array(tmp_path / "a.png", max_pixels=40 * 48).shape == (40, 48)
    with pytest.raises(DataError, match=r"a\.png .* cap of 1,919 pixels"):
        load_array(tmp_path / "a.png", max_pixels=40 * 48 - 1)
    assert load_array(tmp_path / "a.png", max_pixels=None).shape == (40, 48)
