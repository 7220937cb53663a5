"""Tiled inference of the fusion network (FIFN) that equals one whole-image pass, in bounded memory.

Cutting the image into overlapping tiles is not enough for this network: besides its local layers
(convolutions, pooling, BatchNorm with running statistics, the token norms, the decoder), every
FIFB looks at the whole feature map of its scale: the cross-channel weights pool it (Eq. 1), the
cross attention's context sums K^T V over all positions (Eq. 2) and a softmax spatial gate
normalises over all positions; the output is min-max normalised over the whole image. So tiles
run in three passes over the image:

1. encoder features per tile -> per scale, the channel sums and maxima (and the softmax gate's
   log-sum-exp) over the tile cores, which partition the image;
2. with the resulting global channel weights -> per scale, the K^T V sums;
3. the whole network per tile with those global terms -> the raw output of each core; then one
   min-max over the whole raw image.

Each tile is its core plus a halo wider than the receptive field of the local layers, aligned to
the grid of the deepest pooling so every tile pools like the whole image, and the decoder's
bilinear upsampling (align_corners=True, whose sampling positions depend on the whole image's
size) samples at the whole image's coordinates. Each core then equals the one-pass result up to
float rounding. Only compat="fixed" (BatchNorm in eval mode) can be tiled: compat="official"
normalises with each image's own batch statistics, which need the whole image at every layer.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from occo.nn.config import ArchConfig
from occo.nn.fifn.blocks import spatial_softmax
from occo.nn.fifn.model import FIFB, _encode, _tokens, normalise_output

# Peak working memory of one forward per input pixel, in float32 maps per channel of each scale,
# weighted by the scale's share of the pixels. Measured for the default widths at 256x256 on CPU by
# counting live tensor storage (bench/fuse_tiles.py): one pass 1,870 bytes/pixel (8.1 maps), one
# tile's window 1,991 (8.7 maps); 10 leaves a margin (2,300 bytes/pixel). Not yet measured on CUDA.
_MAPS_PER_CHANNEL = 10


def bytes_per_pixel(cfg: ArchConfig) -> int:
    """Estimated peak working memory of one forward pass per input pixel (float32)."""
    return math.ceil(4 * _MAPS_PER_CHANNEL * sum(w / 4**s for s, w in enumerate(cfg.widths)))


def halo(cfg: ArchConfig) -> int:
    """Pixels of context a tile needs on each side for its core to equal the whole-image result.

    The receptive field of the local layers around the cell of an output pixel at each scale: two
    3x3 convolutions per encoder stage (its 2x2 pooling stays inside the cell), Eq. 4's depthwise
    3x3 convolution, and per decoder stage a bilinear x2 upsampling (sources up to 1.5 coarse cells
    away) and two 3x3 convolutions; rounded up to the pooling grid. 80 pixels for four scales, where
    tiles in float64 already equal one pass from 64.
    """
    n = len(cfg.widths)
    encoder = [2]  # stage 0: two 3x3 convolutions
    for s in range(1, n):
        encoder.append(encoder[-1] + 2 * 2**s)
    fused = [r + 2**s for s, r in enumerate(encoder)]
    reach = fused[-1]
    for s in reversed(range(n - 1)):
        reach = max(reach + 3 * 2**s, fused[s]) + 2 * 2**s
    grid = _grid(cfg)
    return -(-reach // grid) * grid


def _grid(cfg: ArchConfig) -> int:
    return 2 ** (len(cfg.widths) - 1)


@dataclass(frozen=True)
class Tile:
    """Rows/columns ``[y0, y1) x [x0, x1)`` of the core and ``[wy0, wy1) x [wx0, wx1)`` of its window."""

    y0: int
    y1: int
    x0: int
    x1: int
    wy0: int
    wy1: int
    wx0: int
    wx1: int


def tiles(height: int, width: int, core: int, margin: int) -> Iterator[Tile]:
    """Cores of side ``core`` (a multiple of the pooling grid) covering the image, with ``margin`` of context."""
    for y0 in range(0, height, core):
        for x0 in range(0, width, core):
            y1, x1 = min(y0 + core, height), min(x0 + core, width)
            yield Tile(
                y0,
                y1,
                x0,
                x1,
                max(0, y0 - margin),
                min(height, y1 + margin),
                max(0, x0 - margin),
                min(width, x1 + margin),
            )


def core_side(cfg: ArchConfig, budget_bytes: int) -> int:
    """The largest core side whose window fits ``budget_bytes``; ValueError when not even the smallest does."""
    grid, margin = _grid(cfg), halo(cfg)
    window = math.isqrt(budget_bytes // bytes_per_pixel(cfg))
    side = (window - 2 * margin) // grid * grid
    if side < grid:
        need = (grid + 2 * margin) ** 2 * bytes_per_pixel(cfg)
        raise ValueError(f"a memory budget of {budget_bytes:,} bytes is too small: one tile needs {need:,}")
    return side


@dataclass(frozen=True)
class _Scale:
    """Where the tile sits at one scale: core rows/columns relative to its window, window start."""

    top: int
    bottom: int
    left: int
    right: int
    wy0: int
    wx0: int


def _scales(tile: Tile, n: int) -> list[_Scale]:
    return [
        _Scale(
            (tile.y0 >> s) - (tile.wy0 >> s),
            (tile.y1 >> s) - (tile.wy0 >> s),
            (tile.x0 >> s) - (tile.wx0 >> s),
            (tile.x1 >> s) - (tile.wx0 >> s),
            tile.wy0 >> s,
            tile.wx0 >> s,
        )
        for s in range(n)
    ]


def _core(x: Tensor, at: _Scale) -> Tensor:
    return x[..., at.top : at.bottom, at.left : at.right]


def _empty(at: _Scale) -> bool:
    """A core of the image's last few rows/columns can hold no pixel of the coarser scales."""
    return at.bottom <= at.top or at.right <= at.left


@dataclass
class _Globals:
    """The whole-image terms of one FIFB: channel weights, the softmax gates' log-sum-exps, attention contexts."""

    total: Tensor | None = None  # pass 1: channel sums of [vi, ir] over the cores (float64)
    peak: Tensor | None = None  # pass 1: channel maxima of [vi, ir]
    lse: list[tuple[Tensor, Tensor]] | None = None  # pass 1, per modality: running max, sum of exp(logit - max)
    weights: Tensor | None = None  # after pass 1: the channel weights (B, 2, C)
    kv: list[Tensor] | None = None  # pass 2: K^T V sums of the ir and vi contexts (float64)
    contexts: tuple[Tensor, Tensor] | None = None  # after pass 2: softmax(K^T V * scale) of both


def _spatial_logits(block: FIFB, vi: Tensor, ir: Tensor) -> tuple[Tensor, Tensor]:
    return tuple(m.conv2(F.relu(m.conv1(x))) for m, x in ((block.spatial.vi, vi), (block.spatial.ir, ir)))


def _softmax_gate(block: FIFB) -> bool:
    return block.spatial is not None and block.spatial.vi.gate is spatial_softmax


def _pass1(block: FIFB, g: _Globals, vi: Tensor, ir: Tensor, at: _Scale) -> None:
    """Accumulate the channel sums/maxima and softmax-gate normalisers over the core."""
    if _empty(at):
        return
    both = _core(torch.cat((vi, ir), 1), at)
    total, peak = both.sum((2, 3), dtype=torch.float64), both.amax((2, 3))
    g.total = total if g.total is None else g.total + total
    g.peak = peak if g.peak is None else torch.maximum(g.peak, peak)
    if _softmax_gate(block):
        logits = [_core(x, at).flatten(1).double() for x in _spatial_logits(block, vi, ir)]
        g.lse = g.lse or [(torch.full_like(x[:, :1], -math.inf), torch.zeros_like(x[:, :1])) for x in logits]
        for i, x in enumerate(logits):
            top, acc = g.lse[i]
            new_top = torch.maximum(top, x.amax(1, keepdim=True))
            g.lse[i] = (new_top, acc * torch.exp(top - new_top) + torch.exp(x - new_top).sum(1, keepdim=True))


def _finish_pass1(block: FIFB, g: _Globals, pixels: int) -> None:
    """Global channel weights from the sums and maxima (Eq. 1, CrossChannelWeights)."""
    if block.channel is not None:
        stats = torch.cat((g.total / pixels, g.peak.double()), 1).to(g.peak.dtype)
        w = torch.sigmoid(block.channel.fc2(F.relu(block.channel.fc1(stats))))
        g.weights = w.unflatten(1, (2, g.peak.shape[1] // 2))


def _enhanced(block: FIFB, g: _Globals, vi: Tensor, ir: Tensor) -> tuple[Tensor, Tensor]:
    """Eq. 1 channel term with the global weights."""
    if g.weights is None:
        return vi, ir
    return vi * g.weights[:, 0, :, None, None], ir * g.weights[:, 1, :, None, None]


def _projected(block: FIFB, c_vi: Tensor, c_ir: Tensor) -> tuple[Tensor, Tensor]:
    cross = block.cross
    return F.relu(cross.proj_vi(_tokens(c_vi))), F.relu(cross.proj_ir(_tokens(c_ir)))


def _pass2(block: FIFB, g: _Globals, vi: Tensor, ir: Tensor, at: _Scale) -> None:
    """Accumulate the K^T V sums of both attention contexts over the core (Eq. 2)."""
    if block.cross is None or _empty(at):
        return
    p_vi, p_ir = _projected(block, *_enhanced(block, g, _core(vi, at), _core(ir, at)))  # token-wise: the core suffices
    sums = []
    for tokens, kv in ((p_ir, block.cross.kv_ir), (p_vi, block.cross.kv_vi)):
        k, v = kv(tokens).chunk(2, dim=-1)
        sums.append((block.cross._split(k).transpose(-2, -1) @ block.cross._split(v)).double())
    g.kv = sums if g.kv is None else [a + b for a, b in zip(g.kv, sums)]


def _finish_pass2(block: FIFB, g: _Globals, dtype: torch.dtype) -> None:
    if block.cross is not None:
        g.contexts = tuple((kv * block.cross.scale).to(dtype).softmax(dim=-2) for kv in g.kv)


def _attended(block: FIFB, g: _Globals, c_vi: Tensor, c_ir: Tensor) -> tuple[Tensor, Tensor]:
    """Eq. 2 with the whole-image contexts: each modality's projected tokens query the other's context,
    the results routed as the block routes them."""
    p_vi, p_ir = _projected(block, c_vi, c_ir)
    return block.cross.route(block.cross._attend(p_vi, g.contexts[0]), block.cross._attend(p_ir, g.contexts[1]))


def _fifb(block: FIFB, g: _Globals, vi: Tensor, ir: Tensor) -> Tensor:
    """FIFB.forward with the whole-image terms (Eq. 1-4); each map is released as soon as it is used."""
    c_vi, c_ir = _enhanced(block, g, vi, ir)
    if block.cross is not None:
        c_vi, c_ir = _attended(block, g, c_vi, c_ir)
    else:
        c_vi, c_ir = _tokens(c_vi), _tokens(c_ir)
    if block.spatial is None:
        s_vi, s_ir = vi, ir
    elif _softmax_gate(block):
        (l_vi, l_ir), ((m_vi, a_vi), (m_ir, a_ir)) = _spatial_logits(block, vi, ir), g.lse
        s_vi = vi * torch.exp(l_vi - (m_vi + a_vi.log()).to(vi.dtype)[:, :, None, None])
        s_ir = ir * torch.exp(l_ir - (m_ir + a_ir.log()).to(ir.dtype)[:, :, None, None])
    else:
        s_vi, s_ir = block.spatial(vi, ir)
    f_vi = block.merge_vi(_tokens(vi), _tokens(s_vi), c_vi)
    f_ir = block.merge_ir(_tokens(ir), _tokens(s_ir), c_ir)
    return block.embed(f_vi.permute(0, 3, 1, 2), f_ir.permute(0, 3, 1, 2))


def _source_rows(out_start: int, out_end: int, n: int, low_start: int, low_len: int, like: Tensor):
    """For whole-image output rows [out_start, out_end) of a x2 align_corners bilinear upsampling of ``n``
    rows (reflect-padded by one row when the skip is odd): window-relative source rows and weights, the
    positions computed in ``like``'s dtype as PyTorch's kernel does."""
    rows = torch.arange(out_start, out_end, device=like.device)
    rows = torch.where(rows >= 2 * n, 2 * n - 2, rows)  # the reflect-padded last row
    src = rows.to(like.dtype) * ((n - 1) / (2 * n - 1) if n > 1 else 0.0)
    i0 = src.floor().long()
    i1 = torch.clamp(i0 + 1, max=n - 1)
    return (i0 - low_start).clamp(0, low_len - 1), (i1 - low_start).clamp(0, low_len - 1), src - i0.to(like.dtype)


def _upsample(low: Tensor, low_at: _Scale, skip: Tensor, skip_at: _Scale, n_rows: int, n_cols: int) -> Tensor:
    """UpBlock's upsampling (and odd-size padding) at the whole image's coordinates."""
    h, w = skip.shape[-2:]
    r0, r1, rl = _source_rows(skip_at.wy0, skip_at.wy0 + h, n_rows, low_at.wy0, low.shape[-2], low)
    c0, c1, cl = _source_rows(skip_at.wx0, skip_at.wx0 + w, n_cols, low_at.wx0, low.shape[-1], low)
    rl = rl[:, None]
    rows = low[..., r0, :] * (1 - rl) + low[..., r1, :] * rl
    return rows[..., c0] * (1 - cl) + rows[..., c1] * cl


def fuse_y_tiled(model: nn.Module, ir_y: Tensor, vi_y: Tensor, *, core: int, device: torch.device) -> Tensor:
    """Fused Y in [0,1] (1,1,H,W) on the CPU, computed tile by tile on ``device`` (cores of side ``core``).

    Equals ``fuse_y`` (compat="fixed") up to float rounding; ``ir_y``/``vi_y`` are (1,1,H,W) and may
    stay on the CPU. The model's mode is left as it was.
    """
    cfg: ArchConfig = model.cfg
    if cfg.compat != "fixed" or cfg.network != "fifn":
        raise ValueError(f"tiled fusion needs compat='fixed' (BatchNorm in eval mode), got compat={cfg.compat!r}")
    n, grid, margin = len(cfg.widths), _grid(cfg), halo(cfg)
    if core % grid:
        raise ValueError(f"tile core {core} must be a multiple of {grid}")
    height, width = ir_y.shape[-2:]
    pieces = list(tiles(height, width, core, margin))
    scales = [_scales(t, n) for t in pieces]
    sizes = [(height >> s, width >> s) for s in range(n)]
    glob = [_Globals() for _ in range(n)]
    raw = torch.empty(1, 1, height, width, dtype=ir_y.dtype)
    was_training = model.training
    model.eval()

    def window(t: Tile) -> tuple[list[Tensor], list[Tensor]]:
        crop = (..., slice(t.wy0, t.wy1), slice(t.wx0, t.wx1))
        vi, ir = vi_y[crop].to(device), ir_y[crop].to(device)
        return _encode(model.encoder_vi, vi), _encode(model.encoder_ir, ir)

    try:
        with torch.no_grad():
            for t, at in zip(pieces, scales):
                for s, (block, vi, ir) in enumerate(zip(model.fuse, *window(t))):
                    _pass1(block, glob[s], vi, ir, at[s])
            for s, block in enumerate(model.fuse):
                _finish_pass1(block, glob[s], sizes[s][0] * sizes[s][1])
            if cfg.cross_attention:
                for t, at in zip(pieces, scales):
                    for s, (block, vi, ir) in enumerate(zip(model.fuse, *window(t))):
                        _pass2(block, glob[s], vi, ir, at[s])
            for s, block in enumerate(model.fuse):
                _finish_pass2(block, glob[s], ir_y.dtype)
            for t, at in zip(pieces, scales):
                fused = [_fifb(block, glob[s], vi, ir) for s, (block, vi, ir) in enumerate(zip(model.fuse, *window(t)))]
                x = fused[-1]
                for up, s in zip(model.decoder, reversed(range(n - 1))):
                    skip = fused[s]
                    upsampled = _upsample(x, at[s + 1], skip, at[s], *sizes[s + 1])
                    x = F.relu(up.conv2(F.relu(up.conv1(torch.cat((skip, upsampled), 1)))))
                raw[..., t.y0 : t.y1, t.x0 : t.x1] = _core(model.head(x), at[0]).cpu()
    finally:
        model.train(was_training)
    return normalise_output(raw, per_image=True)
