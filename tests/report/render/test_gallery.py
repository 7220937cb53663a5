from pathlib import Path

import numpy as np
import pytest

from occo.config import Gallery
from occo.data.io import DataError, load_array
from occo.report.render.gallery import LABEL_HEIGHT, build_gallery, gallery_methods


def test_methods_put_occo_first(workspace: Path) -> None:
    assert gallery_methods(workspace, "synthetic", "test") == ["occo", "DenseFuse"]


def test_gallery_rows_have_every_tile(workspace: Path, tmp_path: Path) -> None:
    out = tmp_path / "gallery"
    rows, labels = build_gallery(workspace, Gallery(dataset="synthetic", n=2), out, tile_height=48, columns=6)
    assert labels == ["infrared", "visible", "infrared mask", "visible mask", "occo", "DenseFuse"]
    assert [image_id for image_id, _ in rows] == ["syn_000", "syn_001"]
    picture = load_array(rows[1][1])
    # 6 tiles (ir, vi, ir mask, vi mask, occo, DenseFuse) of 64x48 (source aspect 32x24) plus label bands
    assert picture.shape == (48 + LABEL_HEIGHT, 6 * 64 + 5 * 4, 3)
    # syn_001 has no DenseFuse result and no visible mask: those tiles are grey
    last = picture[LABEL_HEIGHT:, -64:]
    assert (last == 200).all()
    vi_mask = picture[LABEL_HEIGHT:, 3 * 68 : 3 * 68 + 64]
    assert (vi_mask == 200).all()
    ir_mask = picture[LABEL_HEIGHT:, 2 * 68 : 2 * 68 + 64]
    assert set(np.unique(ir_mask).tolist()) == {0, 255}  # binary, resized without interpolation


def test_requested_ids_and_wrapping(workspace: Path, tmp_path: Path) -> None:
    chosen = Gallery(dataset="synthetic", ids=["syn_002"])
    rows, _ = build_gallery(workspace, chosen, tmp_path, tile_height=24, columns=4)
    assert [i for i, _ in rows] == ["syn_002"]
    assert load_array(rows[0][1]).shape[0] == 2 * (24 + LABEL_HEIGHT) + 4


def test_unknown_id_is_a_clear_error(workspace: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="syn_999"):
        build_gallery(workspace, Gallery(dataset="synthetic", ids=["syn_999"]), tmp_path)


def test_datasets_without_masks_get_no_mask_tiles(workspace: Path, tmp_path: Path) -> None:
    for modality in ("ir", "vi"):
        for path in (workspace / "data/raw/synthetic/test/masks" / modality).iterdir():
            path.unlink()
        (workspace / "data/raw/synthetic/test/masks" / modality).rmdir()
    rows, labels = build_gallery(workspace, Gallery(dataset="synthetic", n=1), tmp_path, tile_height=24)
    assert labels == ["infrared", "visible", "occo", "DenseFuse"]
    assert load_array(rows[0][1]).shape[1] == 4 * 32 + 3 * 4
