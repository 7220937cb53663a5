"""Overlay gallery for auditing the masks: source images with their boxes and a mask tint.

``<gallery>/<id>.png`` (the masks stage writes reports/masks/<dataset>/<split>/, apart from the masks
the training stage reads, so that a gallery setting never looks like a change of masks) holds three
panels side by side: the visible image with its boxes and mask (green), the infrared image with its
boxes and mask (red), and the §3.2 decomposition over the visible image (shared yellow,
infrared-unique red, visible-unique green).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import torch

from occo.data import DataError, Pair, load_array, load_pair, save_png
from occo.masks.decompose import decompose_masks
from occo.masks.generate import as_rgb8, pair_outputs

log = logging.getLogger(__name__)

TINT_ALPHA = 0.45
COLOURS = {
    "vi": (0, 220, 0),
    "ir": (230, 0, 0),
    "shared": (240, 220, 0),
    "ir_unique": (230, 0, 0),
    "vi_unique": (0, 220, 0),
}


def tint(image: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int], alpha: float = TINT_ALPHA) -> np.ndarray:
    """``(1 - alpha)·image + alpha·colour`` inside ``mask``, the image elsewhere (uint8 RGB)."""
    out = image.astype(np.float32)
    out[mask] = (1 - alpha) * out[mask] + alpha * np.asarray(colour, np.float32)
    return np.round(out).astype(np.uint8)


def draw_boxes(
    image: np.ndarray, boxes: list[list[float]], scores: list[float], colour: tuple[int, int, int]
) -> np.ndarray:
    """The image with each xyxy box outlined and labelled with its score."""
    out = np.ascontiguousarray(image.copy())
    for (x0, y0, x1, y1), score in zip(boxes, scores):
        cv2.rectangle(out, (round(x0), round(y0)), (round(x1), round(y1)), colour, 2)
        cv2.putText(
            out,
            f"{score:.2f}",
            (round(x0) + 2, max(round(y0) - 3, 10)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.4,
            colour,
            1,
            cv2.LINE_AA,
        )
    return out


def render_overlay(
    *, ir: np.ndarray, vi: np.ndarray, ir_mask: np.ndarray, vi_mask: np.ndarray, boxes: dict | None
) -> np.ndarray:
    """Three RGB panels side by side (visible, infrared, decomposition); ``boxes`` is a pair's box JSON or None."""
    ir, vi = as_rgb8(ir), as_rgb8(vi)
    panels = []
    for kind, image, mask in (("vi", vi, vi_mask), ("ir", ir, ir_mask)):
        panel = tint(image, mask, COLOURS[kind])
        if boxes is not None:
            panel = draw_boxes(panel, boxes[kind]["boxes"], boxes[kind]["scores"], COLOURS[kind])
        panels.append(panel)
    regions = decompose_masks(ir_mask=torch.from_numpy(ir_mask), vi_mask=torch.from_numpy(vi_mask))
    decomposition = vi
    for name in ("shared", "ir_unique", "vi_unique"):
        decomposition = tint(decomposition, regions[name].numpy() > 0, COLOURS[name], alpha=0.6)
    panels.append(decomposition)
    return np.concatenate(panels, axis=1)


def write_gallery(pairs: list[Pair], masks_dir: Path, gallery_dir: Path, count: int) -> int:
    """Write ``<gallery_dir>/<id>.png`` for the first ``count`` pairs (by id) that lack one, from the masks and
    boxes in ``masks_dir``; returns how many were written."""
    written = 0
    for pair in sorted(pairs, key=lambda p: p.id)[:count]:
        target = gallery_dir / f"{pair.id}.png"
        if target.is_file():
            continue
        paths = pair_outputs(masks_dir, pair.id)
        ir, vi = load_pair(pair)
        masks = {}
        for kind in ("ir", "vi"):
            mask = load_array(paths[kind])
            if mask.shape[:2] != ir.shape[:2]:
                raise DataError(
                    f"mask {paths[kind]} is {mask.shape[1]}x{mask.shape[0]}, "
                    f"its source {pair.ir} {ir.shape[1]}x{ir.shape[0]}"
                )
            masks[kind] = (mask.max(axis=2) if mask.ndim == 3 else mask) > 0
        boxes = json.loads(paths["boxes"].read_text(encoding="utf-8")) if paths["boxes"].is_file() else None
        save_png(target, render_overlay(ir=ir, vi=vi, ir_mask=masks["ir"], vi_mask=masks["vi"], boxes=boxes))
        written += 1
    if written:
        log.info("wrote %d gallery images to %s", written, gallery_dir)
    return written
