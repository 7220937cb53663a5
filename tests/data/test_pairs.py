import logging
import re

import numpy as np
import pytest
from PIL import Image

from occo.data.io import DataError
from occo.data.pairs import Pair, find_pairs, index_images, load_pair


def _img(path, shape=(4, 5)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros(shape, np.uint8)).save(path)


def test_pairs_by_stem_across_extensions(tmp_path):
    for name in ["b.png", "a.png", "c.bmp"]:
        _img(tmp_path / "ir" / name)
    for name in ["a.jpg", "b.png", "c.tif"]:
        _img(tmp_path / "vi" / name)
    (tmp_path / "ir" / "notes.txt").write_text("x")
    _img(tmp_path / "vi" / ".hidden.png")
    (tmp_path / "ir" / "sub.png").mkdir()
    pairs = find_pairs(ir=tmp_path / "ir", vi=tmp_path / "vi")
    assert [p.id for p in pairs] == ["a", "b", "c"]
    assert pairs[0] == Pair(id="a", ir=tmp_path / "ir" / "a.png", vi=tmp_path / "vi" / "a.jpg")


def test_missing_folder(tmp_path):
    _img(tmp_path / "ir" / "a.png")
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "vi"))):
        find_pairs(ir=tmp_path / "ir", vi=tmp_path / "vi")


def test_empty_folder(tmp_path):
    _img(tmp_path / "ir" / "a.png")
    (tmp_path / "vi").mkdir()
    (tmp_path / "vi" / "readme.txt").write_text("no images")
    with pytest.raises(DataError, match="no visible images"):
        find_pairs(ir=tmp_path / "ir", vi=tmp_path / "vi")


def test_unmatched_lists_names_and_counts(tmp_path):
    for i in range(13):
        _img(tmp_path / "ir" / f"x{i:02d}.png")
    _img(tmp_path / "ir" / "shared.png")
    _img(tmp_path / "vi" / "shared.png")
    _img(tmp_path / "vi" / "lonely.jpg")
    with pytest.raises(DataError) as err:
        find_pairs(ir=tmp_path / "ir", vi=tmp_path / "vi")
    msg = str(err.value)
    assert "13 infrared images" in msg and "no visible partner" in msg
    assert "x00.png, x01.png" in msg and "x09.png" in msg and "x10.png" not in msg and "(3 more)" in msg
    assert "1 visible images" in msg and "lonely.jpg" in msg
    assert "\n" not in msg


def test_allow_unmatched_warns_and_skips(tmp_path, caplog):
    _img(tmp_path / "ir" / "a.png")
    _img(tmp_path / "ir" / "b.png")
    _img(tmp_path / "vi" / "a.png")
    with caplog.at_level(logging.WARNING):
        pairs = find_pairs(ir=tmp_path / "ir", vi=tmp_path / "vi", allow_unmatched=True)
    assert [p.id for p in pairs] == ["a"]
    assert "b.png" in caplog.text


def test_no_common_ids_even_when_allowed(tmp_path):
    _img(tmp_path / "ir" / "a.png")
    _img(tmp_path / "vi" / "b.png")
    with pytest.raises(DataError, match="no matching"):
        find_pairs(ir=tmp_path / "ir", vi=tmp_path / "vi", allow_unmatched=True)


def test_duplicate_stems(tmp_path):
    _img(tmp_path / "ir" / "a.png")
    _img(tmp_path / "ir" / "a.jpg")
    _img(tmp_path / "vi" / "a.png")
    with pytest.raises(DataError, match=r"a: a\.jpg, a\.png"):
        find_pairs(ir=tmp_path / "ir", vi=tmp_path / "vi")


def test_index_with_pattern_and_width(tmp_path):
    for name in ["IR1.png", "IR12.png", "VIS1.png", "VIS1.jpg", "VIS12.png"]:
        _img(tmp_path / name)
    assert index_images(tmp_path, pattern=r"^IR(\d+)\.png$", id_width=2) == {
        "01": tmp_path / "IR1.png",
        "12": tmp_path / "IR12.png",
    }
    assert sorted(index_images(tmp_path, pattern=r"^VIS(\d+)\.png$", id_width=2)) == ["01", "12"]


def test_load_pair_and_size_mismatch(tmp_path):
    _img(tmp_path / "ir" / "a.png", (4, 5))
    _img(tmp_path / "vi" / "a.png", (4, 5, 3))
    _img(tmp_path / "ir" / "b.png", (4, 5))
    _img(tmp_path / "vi" / "b.png", (6, 5))
    good, bad = find_pairs(ir=tmp_path / "ir", vi=tmp_path / "vi")
    ir, vi = load_pair(good)
    assert ir.shape == (4, 5) and vi.shape == (4, 5, 3)
    with pytest.raises(DataError) as err:
        load_pair(bad)
    message = str(err.value)
    assert f"{tmp_path / 'ir' / 'b.png'} is 4x5" in message and f"{tmp_path / 'vi' / 'b.png'} is 6x5" in message
