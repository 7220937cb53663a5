"""Tiled inference of RFN-Nest in bounded memory, equal to one whole-image pass up to float rounding.

RFN-Nest is fully convolutional: every layer is local, so each output pixel depends on a bounded
neighbourhood of the input (its receptive field). A tile is its core plus a halo at least that wide,
aligned to the grid of the deepest pooling so every tile pools like the whole image and a window that
reaches the image's last row/column floors odd sizes there as the whole image does. The reflection padding
of every convolution at a window's inner border disturbs only the halo. Each core's raw output then equals
the whole image's; the min-max of the output rule runs once, over the stitched raw image.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from occo.config import Arch
from occo.nn.fifn.tiling import fitting_core, tiles
from occo.nn.rfn_nest.model import STEM, RFNNest, cell_names, nest_infer

NEST_MAPS_PER_CHANNEL = 2.0
"""Peak working memory of one forward per input pixel, in float32 maps per channel of the full-size stretch at the
end of the decoder (the last cell's input and first conv, the full-size features and cells, the stem). Counting
live tensor storage op by op (bench/fuse_tiles.py's counter) gives 1.76 maps for the default widths at 128x128
and 256x192 (5,100 bytes/pixel), 1.54 for widths [8, 16, 16, 16]; 2 leaves a margin."""


def nest_bytes_per_pixel(arch: Arch) -> int:
    """Estimated peak working memory of one RFN-Nest forward per input pixel (float32)."""
    w = list(arch.nest_widths)
    n = len(w)
    finest = (n - 1) * w[0] + w[1]  # the input of the last cell of the finest scale
    return math.ceil(4 * NEST_MAPS_PER_CHANNEL * (finest + finest // 2 + n * w[0] + STEM))


def nest_halo(arch: Arch) -> int:
    """Pixels of context a tile needs on each side: the reach of the receptive field beyond an output pixel's
    cell at each scale, rounded up to the pooling grid.

    Encoder: one 3x3 convolution per scale (``2**s`` pixels at scale s); RFN: three 3x3 convolutions on its
    longest path; decoder cell (i, j): the nearest x2 up-sampling of its coarser input (one fine cell) and a 3x3
    convolution. 72 pixels for four scales.
    """
    n = len(arch.nest_widths)
    encoder = [1]
    for s in range(1, n):
        encoder.append(encoder[-1] + 2**s)
    reach = {(s + 1, 0): encoder[s] + 3 * 2**s for s in range(n)}
    for i, j in cell_names(n):
        s = i - 1
        coarse = reach[(i + 1, j - 1)] + 2**s
        reach[(i, j)] = max(coarse, *(reach[(i, k)] for k in range(j))) + 2**s
    grid = 2 ** (n - 1)
    return -(-reach[(1, n - 1)] // grid) * grid


def nest_core_side(arch: Arch, budget_bytes: int) -> int:
    """The largest core side whose window fits ``budget_bytes`` (:func:`~occo.nn.fifn.tiling.fitting_core`)."""
    grid = 2 ** (len(arch.nest_widths) - 1)
    return fitting_core(budget_bytes, grid=grid, margin=nest_halo(arch), per_pixel=nest_bytes_per_pixel(arch))


def nest_raw_tiled(model: RFNNest, *, ir: Tensor, vi: Tensor, core: int, device: torch.device) -> Tensor:
    """The raw output (1,1,H,W) on the CPU, computed window by window on ``device`` (cores of side ``core``, a
    multiple of the pooling grid); the luminances ``ir``/``vi`` are (1,1,H,W) and may stay on the CPU."""
    grid = 2 ** (len(model.arch.nest_widths) - 1)
    if core % grid:
        raise ValueError(f"tile core {core} must be a multiple of {grid}")
    height, width = ir.shape[-2:]
    raw = torch.empty(1, 1, height, width, dtype=ir.dtype)
    for t in tiles(height, width, core, nest_halo(model.arch)):
        window = (..., slice(t.wy0, t.wy1), slice(t.wx0, t.wx1))
        out = nest_infer(model, ir=ir[window].to(device), vi=vi[window].to(device))
        raw[..., t.y0 : t.y1, t.x0 : t.x1] = out[..., t.y0 - t.wy0 : t.y1 - t.wy0, t.x0 - t.wx0 : t.x1 - t.wx0].cpu()
    return raw
