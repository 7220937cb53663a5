"""Import existing masks instead of generating them: the OCCO authors' release, or our own layout.

Two layouts are recognised: the authors' release, which holds per dataset ``mask_vi/mask_<name>`` and
``mask_ir/mask_<name>`` where ``<name>`` is the source image's file name, and ours (what the masks
stage writes and the synthetic set ships): ``ir/<id>.png`` and ``vi/<id>.png``. Every pair of the
split must have both masks, of the source's size, with binary values ({0, 1} or {0, 255}; grey or
identical RGB channels); otherwise one DataError names the file (or lists the missing ids). Masks are
written as 0/255 PNGs to ``ir/<id>.png`` and ``vi/<id>.png`` with the pair's identity record (occo.masks.generate):
a pair is skipped only when its images and its two source masks are the bytes it was imported from.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from occo.data import DataError, Pair, index_images, load_array, save_png
from occo.data.pairs import listing
from occo.masks.generate import begin_pair, finish_pair, pair_identity, pair_outputs, pending_pairs, prepare_folder

log = logging.getLogger(__name__)

PUBLISHED_DIRS = {"ir": "mask_ir", "vi": "mask_vi"}
PUBLISHED_PATTERN = r"mask_(.+)\.[^.]+"
"""``mask_<name>``: group 1 is the source's file stem, the pair id."""
OWN_DIRS = {"ir": "ir", "vi": "vi"}
IMPORT_SETTINGS = {"source": "import"}
"""The settings of an imported folder; what each pair comes from is in its identity record (the sha256 of its
images and of its two source masks), so another folder with the same masks imports nothing again."""


def mask_layout(folder: Path) -> tuple[dict[str, str], str | None]:
    """The sub-folders per modality and the file-name pattern of a masks folder; DataError when neither layout fits."""
    if all((folder / sub).is_dir() for sub in PUBLISHED_DIRS.values()):
        return PUBLISHED_DIRS, PUBLISHED_PATTERN
    if all((folder / sub).is_dir() for sub in OWN_DIRS.values()):
        return OWN_DIRS, None
    raise DataError(f"{folder} holds neither mask_ir/ + mask_vi/ (the authors' release) nor ir/ + vi/ (occo's layout)")


def binary_mask(path: Path) -> np.ndarray:
    """(H, W) bool of a binary mask file; DataError naming it when it is colour or has other values."""
    mask = load_array(path)
    if mask.ndim == 3:
        if (mask != mask[..., :1]).any():
            raise DataError(f"mask {path} has differing colour channels; expected a binary mask")
        mask = mask[..., 0]
    high = mask.max()
    if high not in (0, 1, 255) or ((mask != 0) & (mask != high)).any():
        values = np.unique(mask)
        shown = f"{values[:8].tolist()}{' ...' if len(values) > 8 else ''}"
        raise DataError(f"mask {path} is not binary: values {shown} (expected 0/1 or 0/255)")
    return mask > 0


def import_masks(folder: Path, pairs: list[Pair], out_dir: Path) -> int:
    """Validate and copy the published masks of ``pairs`` from ``folder`` into ``out_dir``; returns how many
    pairs were written."""
    folder = Path(folder)
    dirs, pattern = mask_layout(folder)
    found = {kind: index_images(folder / sub, pattern=pattern) for kind, sub in dirs.items()}
    for kind, files in found.items():
        missing = [p.id for p in pairs if p.id not in files]
        if missing:
            raise DataError(
                f"{len(missing)} of {len(pairs)} pairs have no mask in {folder / dirs[kind]}: {listing(missing)}"
            )
        extra = len(files.keys() - {p.id for p in pairs})
        if extra:
            log.warning("%s: %d masks match no pair of the split; ignored", folder / dirs[kind], extra)
    prepare_folder(out_dir, IMPORT_SETTINGS)
    identities = {p.id: pair_identity(p, IMPORT_SETTINGS, {k: found[k][p.id] for k in dirs}) for p in pairs}
    pending = pending_pairs(out_dir, pairs, identities, dirs)
    for pair in tqdm(pending, desc=f"import {folder.name}", unit="pair"):
        with Image.open(pair.ir) as source:
            width, height = source.size
        begin_pair(out_dir, pair.id)
        for kind in dirs:
            path = found[kind][pair.id]
            mask = binary_mask(path)
            if mask.shape != (height, width):
                raise DataError(
                    f"mask {path} is {mask.shape[1]}x{mask.shape[0]}, its pair {pair.ir} is {width}x{height}"
                )
            save_png(pair_outputs(out_dir, pair.id)[kind], mask.astype(np.uint8) * 255)
        finish_pair(out_dir, pair.id, identities[pair.id])
    log.info("imported %d pairs of masks from %s to %s", len(pending), folder, out_dir)
    return len(pending)
