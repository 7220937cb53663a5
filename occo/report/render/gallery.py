"""Gallery rows: infrared | visible | infrared mask | visible mask | each method's fused image, per id.

One PNG per id: labelled tiles of equal size laid out in a grid (at most ``columns`` tiles a line).
Masks come from ``data/masks/<ds>/<split>/{ir,vi}`` (the masks stage), else the split's own
``masks/{ir,vi}`` (synthetic set); a modality with no mask folder at all gets no mask tile, and a
tile whose image is absent is drawn grey and labelled "absent".
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from occo.config import Gallery
from occo.data.io import DataError, load_array, save_png, to_uint8
from occo.data.pairs import Pair, find_pairs, index_images
from occo.pipeline.sources import method_images
from occo.report.headline import TRAINED

log = logging.getLogger(__name__)

METHOD_ROOTS = ("data/fused", "data/external")
LABEL_HEIGHT = 22
ABSENT_GREY = 200


def gallery_methods(root: Path, dataset: str, split: str) -> list[str]:
    """Methods with images of ``dataset``/``split``: our trained model's first, then our other fusions, then
    published ones."""
    found: list[str] = []
    for base in METHOD_ROOTS:
        folder = root / base
        names = (
            sorted(p.parents[1].name for p in folder.glob(f"*/{dataset}/{split}") if p.is_dir())
            if folder.is_dir()
            else []
        )
        found += [name for name in names if name not in found]
    return sorted(found, key=lambda name: name != TRAINED)


def mask_folder(root: Path, dataset: str, split: str, modality: str) -> Path | None:
    """The object-mask folder of one modality, or None when there is none."""
    for folder in (
        root / "data/masks" / dataset / split / modality,
        root / "data/raw" / dataset / split / "masks" / modality,
    ):
        if folder.is_dir():
            return folder
    return None


def choose_ids(available: list[str], ids: list[str], n: int, where: Path) -> list[str]:
    """The requested ids (each must exist), or the first ``n`` available ones when none are requested."""
    if not ids:
        return available[:n]
    absent = [i for i in ids if i not in available]
    if absent:
        raise DataError(f"report.gallery.ids {', '.join(absent)} not among the pairs of {where}")
    return list(ids)


def to_rgb(arr: np.ndarray, *, mask: bool = False) -> np.ndarray:
    """uint8 (H,W,3) for display: grey replicated, 16-bit scaled, masks binarised to 0/255."""
    if mask:
        grey = np.where((arr if arr.ndim == 2 else arr.max(axis=2)) > 0, 255, 0).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    arr = to_uint8(arr)
    return np.repeat(arr[..., None], 3, axis=2) if arr.ndim == 2 else arr


def tile(
    image: np.ndarray | None, label: str, size: tuple[int, int], font: ImageFont.ImageFont, *, nearest: bool = False
) -> np.ndarray:
    """One labelled tile of ``size`` (width, height) plus the label band; None draws an 'absent' tile.

    ``nearest`` resizes without interpolation (masks stay binary); images use Lanczos.
    """
    width, height = size
    canvas = Image.new("RGB", (width, height + LABEL_HEIGHT), "white")
    if image is None:
        canvas.paste((ABSENT_GREY,) * 3, (0, LABEL_HEIGHT, width, height + LABEL_HEIGHT))
        label = f"{label} (absent)"
    else:
        resample = Image.Resampling.NEAREST if nearest else Image.Resampling.LANCZOS
        canvas.paste(Image.fromarray(image).resize(size, resample), (0, LABEL_HEIGHT))
    ImageDraw.Draw(canvas).text((4, 3), label, fill="black", font=font)
    return np.asarray(canvas)


def grid(tiles: list[np.ndarray], columns: int) -> np.ndarray:
    """Tiles (all the same shape) in rows of ``columns``, with a 4-pixel white gutter."""
    h, w, _ = tiles[0].shape
    gap = 4
    n_rows = -(-len(tiles) // columns)
    n_cols = min(columns, len(tiles))
    out = np.full((n_rows * (h + gap) - gap, n_cols * (w + gap) - gap, 3), 255, np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, columns)
        out[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = t
    return out


def row_images(
    pair: Pair, masks: dict[str, dict[str, Path]], methods: dict[str, dict[str, Path]]
) -> list[tuple[str, np.ndarray | None]]:
    """The labelled images of one gallery row: infrared, visible, each mask, each method (None: absent)."""
    images: list[tuple[str, np.ndarray | None]] = [
        ("infrared", to_rgb(load_array(pair.ir))),
        ("visible", to_rgb(load_array(pair.vi))),
    ]
    for label, index in masks.items():
        path = index.get(pair.id)
        images.append((label, None if path is None else to_rgb(load_array(path), mask=True)))
    for method, index in methods.items():
        path = index.get(pair.id)
        images.append((method, None if path is None else to_rgb(load_array(path))))
    return images


def build_gallery(
    root: Path, cfg: Gallery, out_dir: Path, *, tile_height: int = 200, columns: int = 6
) -> tuple[list[tuple[str, Path]], list[str]]:
    """Write one gallery PNG per chosen id of ``cfg.dataset``/``cfg.split`` to ``out_dir``; return the
    (id, path) pairs and the tile labels.

    Mask tiles are left out for a modality without any mask folder. Raises DataError when the split
    has no source images or a requested id is not among them.
    """
    dataset, split = cfg.dataset, cfg.split
    data = root / "data/raw" / dataset / split
    pairs = {p.id: p for p in find_pairs(ir=data / "ir", vi=data / "vi")}
    chosen = choose_ids(list(pairs), [str(i) for i in cfg.ids], cfg.n, data)  # ids written as numbers are stems
    masks = {
        label: index_images(folder)
        for modality, label in (("ir", "infrared mask"), ("vi", "visible mask"))
        if (folder := mask_folder(root, dataset, split, modality)) is not None
    }
    methods = {m: index_images(method_images(root, m, dataset, split)) for m in gallery_methods(root, dataset, split)}
    font = ImageFont.load_default(size=14)
    written = []
    for image_id in tqdm(chosen, desc=f"gallery {dataset}/{split}", unit="image"):
        images = row_images(pairs[image_id], masks, methods)
        height, width = images[0][1].shape[:2]
        size = (max(1, round(width * tile_height / height)), tile_height)
        tiles = [tile(img, label, size, font, nearest=label in masks) for label, img in images]
        out = out_dir / f"{dataset}_{split}_{image_id}.png"
        save_png(out, grid(tiles, columns))
        written.append((image_id, out))
    masked = ", ".join(masks) or "none"
    log.info("gallery: %d images of %s/%s, %d methods, masks: %s", len(written), dataset, split, len(methods), masked)
    return written, ["infrared", "visible", *masks, *methods]
