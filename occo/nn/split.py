"""RFN-Nest's test-time split of large images (its test script, ``utils.get_test_image``): an image with a side over
512 pixels is cut into four parts that overlap by 5 rows and 5 columns, each part is fused as an image of its own,
and the raw outputs are averaged where parts overlap before the one output rule (min-max) of the whole image.

``fuse.split_above`` (and ``occo fuse --split-above``) applies it to any network: with RFN-Nest's converted
weights and 512 it reproduces the authors' outputs of large images; whole-image fusion (the default) has no
seams.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def quarters(height: int, width: int) -> list[tuple[slice, slice]]:
    """Rows and columns of the four parts, top-left, top-right, bottom-left, bottom-right: ``[0, h//2 + 3)`` and
    ``[h//2 - 2, h)`` by ``[0, w//2 + 3)`` and ``[w//2 - 2, w)``."""
    hc, wc = height // 2, width // 2
    rows, cols = (slice(0, hc + 3), slice(hc - 2, height)), (slice(0, wc + 3), slice(wc - 2, width))
    return [(r, c) for r in rows for c in cols]


def raw_in_parts(raw_of: Callable[[Tensor, Tensor], Tensor], *, ir: Tensor, vi: Tensor) -> Tensor:
    """The raw output (1,1,H,W) of ``raw_of(ir_part, vi_part)`` over the four parts, the sum of the parts covering
    a pixel (added in the parts' order) divided by their number, as the authors' script stitches them."""
    height, width = ir.shape[-2:]
    total = torch.zeros(1, 1, height, width, dtype=torch.float32)
    count = torch.zeros_like(total)
    for rows, cols in quarters(height, width):
        total[..., rows, cols] += raw_of(ir[..., rows, cols], vi[..., rows, cols]).float().cpu()
        count[..., rows, cols] += 1
    return total / count
