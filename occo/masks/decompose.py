"""§3.2: the four regions of a pair's object masks that the contrastive loss contrasts."""

from __future__ import annotations

import torch

REGIONS: tuple[str, ...] = ("ir_unique", "vi_unique", "shared", "background")


def decompose_masks(*, ir_mask: torch.Tensor, vi_mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """§3.2: ``shared = ir ∧ vi``, ``ir_unique = ir - shared``, ``vi_unique = vi - shared``, background the rest.

    Masks are binarised at 0.5; the four float masks (same shape and float dtype as the inputs, or
    float32) partition every pixel.
    """
    if ir_mask.shape != vi_mask.shape:
        raise ValueError(f"mask shapes differ: {tuple(ir_mask.shape)} vs {tuple(vi_mask.shape)}")
    dtype = ir_mask.dtype if ir_mask.is_floating_point() else torch.float32
    ir, vi = ir_mask > 0.5, vi_mask > 0.5
    shared = ir & vi
    parts = {"ir_unique": ir & ~shared, "vi_unique": vi & ~shared, "shared": shared, "background": ~(ir | vi)}
    return {name: parts[name].to(dtype) for name in REGIONS}


def mask_products(*, ir_mask: torch.Tensor, vi_mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """§3.2 as the authors' code computes it, on the masks as given (no binarisation): ``shared = vi·ir``,
    ``ir_unique = ir - shared``, ``vi_unique = vi - shared``, ``background = 1 - vi_unique - ir_unique - shared``.

    Equal to :func:`decompose_masks` for binary masks; soft masks keep their values.
    """
    if ir_mask.shape != vi_mask.shape:
        raise ValueError(f"mask shapes differ: {tuple(ir_mask.shape)} vs {tuple(vi_mask.shape)}")
    shared = vi_mask * ir_mask
    vi_unique, ir_unique = vi_mask - shared, ir_mask - shared
    parts = {"ir_unique": ir_unique, "vi_unique": vi_unique, "shared": shared}
    return {**parts, "background": 1 - vi_unique - ir_unique - shared}
