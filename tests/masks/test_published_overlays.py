"""Importing the authors' published masks (validation) and the overlay gallery."""

from __future__ import annotations

import json

import numpy as np
import pytest

from occo.data import DataError, find_pairs, load_array, save_png
from occo.masks.overlays import render_overlay, write_gallery
from occo.masks.published import import_masks


def published(folder, pairs, *, skip=(), value=255, size=None, rgb=False):
    """Write mask_ir/ and mask_vi/ like the authors' release: mask_<source file name>."""
    for pair in pairs:
        if pair.id in skip:
            continue
        h, w = size or load_array(pair.ir).shape[:2]
        mask = np.zeros((h, w), np.uint8)
        mask[h // 4 : h // 2, w // 4 : w // 2] = value
        if rgb:
            mask = np.repeat(mask[..., None], 3, axis=2)
        for kind in ("ir", "vi"):
            save_png(folder / f"mask_{kind}" / f"mask_{pair.ir.name}", mask)


@pytest.fixture
def split(tmp_path, synthetic_root):
    root = synthetic_root(tmp_path / "root", n_train=3, n_test=1)
    raw = root / "data/raw/synthetic/train"
    return root, find_pairs(ir=raw / "ir", vi=raw / "vi")


def test_import_valid_folder_then_resume(tmp_path, split):
    root, pairs = split
    published(tmp_path / "pub", pairs, value=1, rgb=True)
    out = root / "data/masks/synthetic/train"
    assert import_masks(tmp_path / "pub", pairs, out) == 3
    mask = load_array(out / "vi/syn_000.png")
    assert mask.shape == (240, 320) and set(np.unique(mask).tolist()) == {0, 255}
    assert mask[60:120, 80:160].all() and not mask[:60].any()
    assert import_masks(tmp_path / "pub", pairs, out) == 0


def test_import_own_layout_the_synthetic_sets_masks(tmp_path, split):
    root, pairs = split
    shipped = root / "data/raw/synthetic/train/masks"  # ir/<id>.png, vi/<id>.png with shared and unique objects
    out = root / "data/masks/synthetic/train"
    assert import_masks(shipped, pairs, out) == 3
    for kind in ("ir", "vi"):
        assert np.array_equal(load_array(out / kind / "syn_001.png"), load_array(shipped / kind / "syn_001.png"))
    assert json.loads((out / "settings.json").read_text())["source"] == "import"


def test_import_folder_of_neither_layout(tmp_path, split):
    root, pairs = split
    (tmp_path / "pub" / "masks").mkdir(parents=True)
    with pytest.raises(DataError, match="holds neither"):
        import_masks(tmp_path / "pub", pairs, root / "data/masks/synthetic/train")


def test_import_reports_missing_ids(tmp_path, split):
    root, pairs = split
    published(tmp_path / "pub", pairs, skip={"syn_001"})
    with pytest.raises(DataError, match="mask_ir: syn_001"):
        import_masks(tmp_path / "pub", pairs, root / "data/masks/synthetic/train")


def test_import_rejects_wrong_size(tmp_path, split):
    root, pairs = split
    published(tmp_path / "pub", pairs, size=(120, 160))
    with pytest.raises(DataError, match=r"mask_syn_000\.png is 160x120"):
        import_masks(tmp_path / "pub", pairs, root / "data/masks/synthetic/train")


def test_import_rejects_non_binary(tmp_path, split):
    root, pairs = split
    published(tmp_path / "pub", pairs, value=128)
    with pytest.raises(DataError, match=r"not binary: values \[0, 128\]"):
        import_masks(tmp_path / "pub", pairs, root / "data/masks/synthetic/train")


def test_gallery_panels_boxes_and_tint(tmp_path, split):
    root, pairs = split
    published(tmp_path / "pub", pairs)
    out = root / "data/masks/synthetic/train"
    import_masks(tmp_path / "pub", pairs, out)
    box = {"boxes": [[10.0, 20.0, 100.0, 90.0]], "scores": [0.9], "phrases": ["car"]}
    (out / "boxes").mkdir()
    (out / "boxes/syn_000.json").write_text(json.dumps({"ir": box, "vi": box}), encoding="utf-8")
    gallery = root / "reports/masks/synthetic/train"
    assert write_gallery(pairs, out, gallery, 2) == 2
    assert write_gallery(pairs, out, gallery, 2) == 0  # existing overlays are kept
    assert sorted(p.name for p in gallery.iterdir()) == ["syn_000.png", "syn_001.png"]
    ir, vi = load_array(pairs[0].ir), load_array(pairs[0].vi)
    ir_mask = load_array(out / "ir/syn_000.png") > 0
    vi_mask = load_array(out / "vi/syn_000.png") > 0
    plain = render_overlay(ir=ir, vi=vi, ir_mask=ir_mask, vi_mask=vi_mask, boxes=None)
    boxed = load_array(gallery / "syn_000.png")
    assert boxed.shape == plain.shape == (240, 960, 3)
    assert not np.array_equal(boxed[:, :320], plain[:, :320])  # the box outline is drawn
    inside, outside = (70, 100), (200, 300)
    assert np.array_equal(plain[outside][:3], vi[outside]) and not np.array_equal(plain[inside], vi[inside])
    assert plain[inside][1] > vi[inside][1]  # green tint on the visible panel
    third = plain[:, 640:]
    assert third[inside][0] > vi[inside][0] and third[inside][1] > vi[inside][1]  # shared region: yellow


def test_a_changed_source_mask_is_imported_again(tmp_path, split):
    """Changing one file of a masks.import folder used to log "imported 0 pairs" and keep the old mask (train was
    then skipped as unchanged)."""
    root, pairs = split
    published(tmp_path / "pub", pairs)
    out = root / "data/masks/synthetic/train"
    assert import_masks(tmp_path / "pub", pairs, out) == 3
    source = tmp_path / "pub" / "mask_vi" / f"mask_{pairs[1].ir.name}"
    changed = np.zeros((240, 320), np.uint8)
    changed[:10] = 255
    save_png(source, changed)
    assert import_masks(tmp_path / "pub", pairs, out) == 1
    assert np.array_equal(load_array(out / "vi" / f"{pairs[1].id}.png"), changed)
    assert import_masks(tmp_path / "pub", pairs, out) == 0


def test_masks_of_an_image_changed_under_its_id_are_imported_again(tmp_path, split):
    root, pairs = split
    published(tmp_path / "pub", pairs)
    out = root / "data/masks/synthetic/train"
    import_masks(tmp_path / "pub", pairs, out)
    save_png(pairs[0].ir, 255 - load_array(pairs[0].ir))
    assert import_masks(tmp_path / "pub", pairs, out) == 1
