"""Tiled inference of the fusion network (FIFN) that equals one whole-image pass, in bounded memory.

Cutting the image into overlapping tiles is not enough for this network: besides its local layers
(convolutions, pooling, BatchNorm with running statistics, the token norms, the decoder), every
FIFB looks at the whole feature map of its scale: the cross-channel weights pool it (Eq. 1), the
cross attention's context sums K^T V over all positions (§3.1) and a softmax spatial gate (Eq. 2)
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
from torch import Tensor

from occo.config import Arch
from occo.nn.fifn.blocks import spatial_softmax
from occo.nn.fifn.model import FIFB, FIFN, encoder_features, normalise_output, to_maps, to_tokens

MAPS_PER_CHANNEL = 10
"""Peak working memory of one forward per input pixel, in float32 maps per channel of each scale, weighted by
the scale's share of the pixels. bench/fuse_tiles.py measures it by counting live tensor storage: for the
default widths at 256x256 on the CPU, one pass holds 1,870 bytes/pixel (8.1 maps) and one tile's window 1,991
(8.7 maps); 10 maps (2,300 bytes/pixel) leave a margin."""


def bytes_per_pixel(arch: Arch) -> int:
    """Estimated peak working memory of one forward pass per input pixel (float32)."""
    return math.ceil(4 * MAPS_PER_CHANNEL * sum(w / 4**s for s, w in enumerate(arch.widths)))


def halo(arch: Arch) -> int:
    """Pixels of context a tile needs on each side for its core to equal the whole-image result.

    The receptive field of the local layers around the cell of an output pixel at each scale: two
    3x3 convolutions per encoder stage (its 2x2 pooling stays inside the cell), Eq. 4's depthwise
    3x3 convolution, and per decoder stage a bilinear x2 upsampling (sources up to 1.5 coarse cells
    away) and two 3x3 convolutions; rounded up to the pooling grid. 80 pixels for four scales, where
    tiles in float64 already equal one pass from 64.
    """
    n = len(arch.widths)
    encoder = [2]  # stage 0: two 3x3 convolutions
    for s in range(1, n):
        encoder.append(encoder[-1] + 2 * 2**s)
    fused = [r + 2**s for s, r in enumerate(encoder)]
    reach = fused[-1]
    for s in reversed(range(n - 1)):
        reach = max(reach + 3 * 2**s, fused[s]) + 2 * 2**s
    grid = _grid(arch)
    return -(-reach // grid) * grid


def _grid(arch: Arch) -> int:
    return 2 ** (len(arch.widths) - 1)


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


def fitting_core(budget_bytes: int, *, grid: int, margin: int, per_pixel: int) -> int:
    """The largest core side (a multiple of ``grid``) whose window, the core plus ``margin`` on each side at
    ``per_pixel`` bytes a pixel, fits ``budget_bytes``; ValueError when not even the smallest does."""
    side = (math.isqrt(budget_bytes // per_pixel) - 2 * margin) // grid * grid
    if side < grid:
        need = (grid + 2 * margin) ** 2 * per_pixel
        raise ValueError(f"a memory budget of {budget_bytes:,} bytes is too small: one tile needs {need:,}")
    return side


def core_side(arch: Arch, budget_bytes: int) -> int:
    """The largest core side whose window fits ``budget_bytes`` (:func:`fitting_core`)."""
    return fitting_core(budget_bytes, grid=_grid(arch), margin=halo(arch), per_pixel=bytes_per_pixel(arch))


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


def _spatial_logits(block: FIFB, *, ir: Tensor, vi: Tensor) -> tuple[Tensor, Tensor]:
    """Eq. 2's gate logits ``C1x1(R(C1x1(φ)))`` of both modalities, ``(vi, ir)``."""
    return tuple(m.conv2(F.relu(m.conv1(x))) for m, x in ((block.spatial.vi, vi), (block.spatial.ir, ir)))


def _softmax_gate(block: FIFB) -> bool:
    return block.spatial is not None and block.spatial.vi.gate is spatial_softmax


def _pass1(block: FIFB, g: _Globals, at: _Scale, *, ir: Tensor, vi: Tensor) -> None:
    """Accumulate the channel sums/maxima and softmax-gate normalisers over the core."""
    if _empty(at):
        return
    both = _core(torch.cat((vi, ir), 1), at)
    total, peak = both.sum((2, 3), dtype=torch.float64), both.amax((2, 3))
    g.total = total if g.total is None else g.total + total
    g.peak = peak if g.peak is None else torch.maximum(g.peak, peak)
    if _softmax_gate(block):
        logits = [_core(x, at).flatten(1).double() for x in _spatial_logits(block, ir=ir, vi=vi)]
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


def _enhanced(g: _Globals, *, ir: Tensor, vi: Tensor) -> tuple[Tensor, Tensor]:
    """Eq. 1 channel term with the global weights, ``(vi, ir)``."""
    if g.weights is None:
        return vi, ir
    return vi * g.weights[:, 0, :, None, None], ir * g.weights[:, 1, :, None, None]


def _projected(block: FIFB, *, ir: Tensor, vi: Tensor) -> tuple[Tensor, Tensor]:
    """The cross attention's token projections (Linear + ReLU) of both channel-enhanced maps, ``(vi, ir)``."""
    cross = block.cross
    return F.relu(cross.proj_vi(to_tokens(vi))), F.relu(cross.proj_ir(to_tokens(ir)))


def _pass2(block: FIFB, g: _Globals, at: _Scale, *, ir: Tensor, vi: Tensor) -> None:
    """Accumulate the K^T V sums of both attention contexts over the core (§3.1 cross attention)."""
    if block.cross is None or _empty(at):
        return
    c_vi, c_ir = _enhanced(g, ir=_core(ir, at), vi=_core(vi, at))
    p_vi, p_ir = _projected(block, ir=c_ir, vi=c_vi)  # token-wise: the core suffices
    sums = []
    for tokens, kv in ((p_ir, block.cross.kv_ir), (p_vi, block.cross.kv_vi)):
        k, v = kv(tokens).chunk(2, dim=-1)
        sums.append((block.cross.split_heads(k).transpose(-2, -1) @ block.cross.split_heads(v)).double())
    g.kv = sums if g.kv is None else [a + b for a, b in zip(g.kv, sums)]


def _finish_pass2(block: FIFB, g: _Globals, dtype: torch.dtype) -> None:
    """The whole-image contexts ``softmax(K^T V * scale)`` from the K^T V sums."""
    if block.cross is not None:
        g.contexts = tuple((kv * block.cross.scale).to(dtype).softmax(dim=-2) for kv in g.kv)


def _attended(block: FIFB, g: _Globals, *, ir: Tensor, vi: Tensor) -> tuple[Tensor, Tensor]:
    """§3.1 cross attention with the whole-image contexts: each modality's projected tokens query the other's
    context, the results routed as the block routes them (``(to_vi, to_ir)``)."""
    p_vi, p_ir = _projected(block, ir=ir, vi=vi)
    cross = block.cross
    return cross.route(vi_queries_ir=cross.attend(p_vi, g.contexts[0]), ir_queries_vi=cross.attend(p_ir, g.contexts[1]))


def _spatial(block: FIFB, g: _Globals, *, ir: Tensor, vi: Tensor) -> tuple[Tensor, Tensor]:
    """Eq. 2 with a softmax gate normalised over the whole image (``(vi, ir)``); other gates are local."""
    if block.spatial is None:
        return vi, ir
    if not _softmax_gate(block):
        return block.spatial(ir=ir, vi=vi)
    (l_vi, l_ir), ((m_vi, a_vi), (m_ir, a_ir)) = _spatial_logits(block, ir=ir, vi=vi), g.lse
    s_vi = vi * torch.exp(l_vi - (m_vi + a_vi.log()).to(vi.dtype)[:, :, None, None])
    s_ir = ir * torch.exp(l_ir - (m_ir + a_ir.log()).to(ir.dtype)[:, :, None, None])
    return s_vi, s_ir


def _fifb(block: FIFB, g: _Globals, *, ir: Tensor, vi: Tensor) -> Tensor:
    """FIFB.forward with the whole-image terms (Eq. 1-4); each map is released as soon as it is used."""
    c_vi, c_ir = _enhanced(g, ir=ir, vi=vi)
    if block.cross is not None:
        c_vi, c_ir = _attended(block, g, ir=c_ir, vi=c_vi)
    else:
        c_vi, c_ir = to_tokens(c_vi), to_tokens(c_ir)
    s_vi, s_ir = _spatial(block, g, ir=ir, vi=vi)
    f_vi = block.merge_vi(to_tokens(vi), to_tokens(s_vi), c_vi)
    f_ir = block.merge_ir(to_tokens(ir), to_tokens(s_ir), c_ir)
    return block.embed(ir=to_maps(f_ir), vi=to_maps(f_vi))


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


@dataclass(frozen=True)
class _Image:
    """The whole image: its luminances (1,1,H,W), where tiles run, and the (height, width) of every scale."""

    ir: Tensor
    vi: Tensor
    device: torch.device
    sizes: list[tuple[int, int]]


def _window(model: FIFN, image: _Image, t: Tile) -> Iterator[tuple[FIFB, Tensor, Tensor]]:
    """Per scale ``(block, vi, ir)``: the FIFB and the encoder features of both modalities over ``t``'s window."""
    crop = (..., slice(t.wy0, t.wy1), slice(t.wx0, t.wx1))
    vi, ir = image.vi[crop].to(image.device), image.ir[crop].to(image.device)
    return zip(model.fuse, encoder_features(model.encoder_vi, vi), encoder_features(model.encoder_ir, ir))


def _whole_image_terms(model: FIFN, image: _Image, pieces: list[tuple[Tile, list[_Scale]]]) -> list[_Globals]:
    """Passes 1 and 2 over every tile: the whole-image terms of each scale's FIFB."""
    glob = [_Globals() for _ in model.fuse]
    for t, at in pieces:
        for s, (block, vi, ir) in enumerate(_window(model, image, t)):
            _pass1(block, glob[s], at[s], ir=ir, vi=vi)
    for s, block in enumerate(model.fuse):
        _finish_pass1(block, glob[s], image.sizes[s][0] * image.sizes[s][1])
    if model.arch.cross_attention:
        for t, at in pieces:
            for s, (block, vi, ir) in enumerate(_window(model, image, t)):
                _pass2(block, glob[s], at[s], ir=ir, vi=vi)
    for s, block in enumerate(model.fuse):
        _finish_pass2(block, glob[s], image.ir.dtype)
    return glob


def _tile_output(model: FIFN, image: _Image, glob: list[_Globals], t: Tile, at: list[_Scale]) -> Tensor:
    """Pass 3 for one tile: the whole network with the whole-image terms; the raw output of its core."""
    fused = [_fifb(block, glob[s], ir=ir, vi=vi) for s, (block, vi, ir) in enumerate(_window(model, image, t))]
    x = fused[-1]
    for up, s in zip(model.decoder, reversed(range(len(fused) - 1))):
        skip = fused[s]
        upsampled = _upsample(x, at[s + 1], skip, at[s], *image.sizes[s + 1])
        x = F.relu(up.conv2(F.relu(up.conv1(torch.cat((skip, upsampled), 1)))))
    return _core(model.head(x), at[0])


def fuse_y_tiled(model: FIFN, *, ir: Tensor, vi: Tensor, core: int, device: torch.device) -> Tensor:
    """Fused Y in [0,1] (1,1,H,W) on the CPU, computed tile by tile on ``device`` (cores of side ``core``).

    Equals ``fuse_y`` (compat="fixed") up to float rounding; the luminances ``ir``/``vi`` are (1,1,H,W) and
    may stay on the CPU. The model's mode is left as it was.
    """
    return normalise_output(raw_tiled(model, ir=ir, vi=vi, core=core, device=device), per_image=True)


def raw_tiled(model: FIFN, *, ir: Tensor, vi: Tensor, core: int, device: torch.device) -> Tensor:
    """The raw output (1,1,H,W) of :func:`fuse_y_tiled`, before its min-max normalisation."""
    arch = model.arch
    if arch.compat != "fixed":
        raise ValueError(f"tiled fusion needs compat='fixed' (BatchNorm in eval mode), got compat={arch.compat!r}")
    n, grid = len(arch.widths), _grid(arch)
    if core % grid:
        raise ValueError(f"tile core {core} must be a multiple of {grid}")
    height, width = ir.shape[-2:]
    image = _Image(ir, vi, device, [(height >> s, width >> s) for s in range(n)])
    pieces = [(t, _scales(t, n)) for t in tiles(height, width, core, halo(arch))]
    raw = torch.empty(1, 1, height, width, dtype=ir.dtype)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            glob = _whole_image_terms(model, image, pieces)
            for t, at in pieces:
                raw[..., t.y0 : t.y1, t.x0 : t.x1] = _tile_output(model, image, glob, t, at).cpu()
    finally:
        model.train(was_training)
    return raw
