"""Matching infrared and visible images into pairs by id."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from occo.data.io import IMAGE_EXTS, MAX_PIXELS, DataError, load_array

log = logging.getLogger(__name__)

_MAX_LISTED = 10


@dataclass(frozen=True, kw_only=True)
class Pair:
    """One registered infrared/visible pair."""

    id: str
    ir: Path
    vi: Path


def index_images(folder: str | Path, *, pattern: str | None = None, id_width: int | None = None) -> dict[str, Path]:
    """Map id -> image file for the non-hidden image files directly in ``folder``.

    The id is the file stem, or, with ``pattern``, group 1 of that regex matched against the
    whole file name (files that do not match are ignored). ``id_width`` zero-pads numeric ids.
    Two files with the same id raise DataError.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"image folder not found: {folder}")
    regex = re.compile(pattern) if pattern else None
    found: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in IMAGE_EXTS or not path.is_file():
            continue
        if regex is None:
            key = path.stem
        else:
            match = regex.fullmatch(path.name)
            if match is None:
                continue
            key = match.group(1)
        if id_width is not None and key.isdigit():
            key = key.zfill(id_width)
        found.setdefault(key, []).append(path)
    dupes = {k: v for k, v in found.items() if len(v) > 1}
    if dupes:
        listed = "; ".join(f"{k}: {', '.join(p.name for p in v)}" for k, v in sorted(dupes.items())[:_MAX_LISTED])
        raise DataError(f"{len(dupes)} duplicate image ids in {folder} ({listed})")
    return {k: v[0] for k, v in found.items()}


def listing(names: list[str]) -> str:
    """``a, b, ... (N more)``: the first ten of ``names``, for one-line messages."""
    shown = ", ".join(names[:_MAX_LISTED])
    return shown + (f", ... ({len(names) - _MAX_LISTED} more)" if len(names) > _MAX_LISTED else "")


def match_pairs(
    *,
    ir: dict[str, Path],
    vi: dict[str, Path],
    ir_dir: Path,
    vi_dir: Path,
    allow_unmatched: bool = False,
) -> list[Pair]:
    """Pair two id -> file maps (from :func:`index_images`) into a list sorted by id.

    Ids present on one side only raise DataError listing them, or with ``allow_unmatched``
    are logged and skipped. Empty maps raise DataError naming the folder.
    """
    for side, files, folder in (("infrared", ir, ir_dir), ("visible", vi, vi_dir)):
        if not files:
            raise DataError(f"no {side} images in {folder}")
    ir_only = sorted(ir.keys() - vi.keys())
    vi_only = sorted(vi.keys() - ir.keys())
    if ir_only or vi_only:
        parts = []
        if ir_only:
            names = [ir[k].name for k in ir_only]
            parts.append(f"{len(names)} infrared images in {ir_dir} have no visible partner: {listing(names)}")
        if vi_only:
            names = [vi[k].name for k in vi_only]
            parts.append(f"{len(names)} visible images in {vi_dir} have no infrared partner: {listing(names)}")
        message = "; ".join(parts)
        if not allow_unmatched:
            raise DataError(message)
        log.warning("skipping unmatched images: %s", message)
    ids = sorted(ir.keys() & vi.keys())
    if not ids:
        raise DataError(f"no matching infrared/visible ids between {ir_dir} and {vi_dir}")
    return [Pair(id=k, ir=ir[k], vi=vi[k]) for k in ids]


def find_pairs(*, ir: str | Path, vi: str | Path, allow_unmatched: bool = False) -> list[Pair]:
    """Pair the images of the folders ``ir`` and ``vi`` by file stem (extensions may differ), sorted by id.

    Hidden and non-image files are ignored. A missing or image-less folder, duplicate stems in
    one folder, or stems present on one side only raise DataError (the last is only logged and
    skipped with ``allow_unmatched``).
    """
    ir_dir, vi_dir = Path(ir), Path(vi)
    return match_pairs(
        ir=index_images(ir_dir), vi=index_images(vi_dir), ir_dir=ir_dir, vi_dir=vi_dir, allow_unmatched=allow_unmatched
    )


def image_size(arr: np.ndarray) -> str:
    """``HxW`` of an image array, for messages."""
    return f"{arr.shape[0]}x{arr.shape[1]}"


def load_pair(pair: Pair, *, max_pixels: int | None = MAX_PIXELS) -> tuple[np.ndarray, np.ndarray]:
    """Load both images of a pair (each within ``max_pixels``); differing sizes raise DataError naming both files."""
    ir = load_array(pair.ir, max_pixels=max_pixels)
    vi = load_array(pair.vi, max_pixels=max_pixels)
    if ir.shape[:2] != vi.shape[:2]:
        raise DataError(
            f"size mismatch for pair {pair.id}: infrared {pair.ir} is {image_size(ir)}, "
            f"visible {pair.vi} is {image_size(vi)}"
        )
    return ir, vi
