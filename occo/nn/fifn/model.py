"""The Feature Interaction Fusion Network (FIFN) of OCCO (paper §3.1, Fig. 2), in one readable file.

    ir_y, vi_y (B,1,H,W) in [0,1]
      -> two encoders (4 conv stages each, max-pool between stages; widths 32/64/112/160)
      -> one FIFB per scale (1, 1/2, 1/4, 1/8) on the pre-pool features of both encoders
      -> decoder: 3 bilinear x2 up-blocks with the FIFB outputs as skips, 1x1 conv to one channel
      -> raw fused Y (no activation); ``normalise_output`` min-max normalises it

Any size of at least 8x8 works: pooling floors odd sizes and each up-block reflect-pads its
upsampled input by the missing row/column (0 or 1) to the skip's size, as the public code does.
``fuse_y`` is the inference rule (BatchNorm statistics, normalisation) of the configured compat.
The network is built from the ``arch`` section of the params (``occo.config.Arch``), which every
checkpoint records; the two modalities are keyword-only arguments everywhere (``ir=``, ``vi=``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import MappingProxyType

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from occo.config import Arch
from occo.nn.fifn.blocks import SPATIAL_ENHANCEMENTS, ChannelEmbed, CrossAttention, CrossChannelWeights, ResidualMerge


class ConvBlock(nn.Module):
    """Encoder conv block (§3.1): two conv units (3x3 conv, BN, ReLU); the max-pool sits in ``encoder_features``."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(c_out)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))


class FIFB(nn.Module):
    """Feature Interaction Fusion Block: fuses the visible and infrared features of one scale.

    Eq. 1 cross-channel weights, Eq. 2 spatial weights, the §3.1 cross attention (unnumbered),
    Eq. 3 residual merge, Eq. 4 channel embedding. A disabled ablation switch leaves its module out:
    the unweighted feature takes the place of its output.
    """

    def __init__(self, dim: int, heads: int, arch: Arch) -> None:
        super().__init__()
        self.channel = CrossChannelWeights(dim) if arch.cross_channel else None
        self.spatial = SPATIAL_ENHANCEMENTS[arch.compat](dim, arch.spatial_gate) if arch.spatial_enhancement else None
        self.cross = CrossAttention(dim, heads, arch.attention_routing) if arch.cross_attention else None
        self.merge_vi = ResidualMerge(dim, arch.token_norm)
        self.merge_ir = ResidualMerge(dim, arch.token_norm)
        self.embed = ChannelEmbed(dim)

    def forward(self, *, ir: Tensor, vi: Tensor) -> Tensor:
        c_vi, c_ir = self.channel(ir=ir, vi=vi) if self.channel is not None else (vi, ir)  # Eq. 1
        s_vi, s_ir = self.spatial(ir=ir, vi=vi) if self.spatial is not None else (vi, ir)  # Eq. 2
        c_vi, c_ir = to_tokens(c_vi), to_tokens(c_ir)
        if self.cross is not None:
            c_vi, c_ir = self.cross(ir=c_ir, vi=c_vi)  # §3.1 cross attention, routed by arch.attention_routing
        f_vi = self.merge_vi(to_tokens(vi), to_tokens(s_vi), c_vi)  # Eq. 3
        f_ir = self.merge_ir(to_tokens(ir), to_tokens(s_ir), c_ir)
        return self.embed(ir=to_maps(f_ir), vi=to_maps(f_vi))  # Eq. 4


class UpBlock(nn.Module):
    """Decoder upconv block: bilinear x2 upsampling (align_corners=True), concat with the skip, 2x(3x3 conv, ReLU).

    The public code's form; §3.1's upconv block is two conv units, i.e. with BatchNorm.
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)

    def forward(self, skip: Tensor, low: Tensor) -> Tensor:
        up = F.interpolate(low, scale_factor=2, mode="bilinear", align_corners=True)
        dh, dw = skip.shape[-2] - up.shape[-2], skip.shape[-1] - up.shape[-1]
        if dh or dw:  # odd skip size: pooling dropped one row/column
            up = F.pad(up, (0, dw, 0, dh), mode="reflect")
        return F.relu(self.conv2(F.relu(self.conv1(torch.cat((skip, up), 1)))))


class FIFN(nn.Module):
    """The fusion network: ``model(ir=ir_y, vi=vi_y) -> raw fused Y``, all (B,1,H,W); ``arch`` is what built it."""

    def __init__(self, arch: Arch) -> None:
        super().__init__()
        if arch.name != "fifn":
            raise ValueError(f"FIFN is built from arch.name fifn, got {arch.name}")
        self.arch = arch
        w = arch.widths
        self.encoder_vi = nn.ModuleList(ConvBlock(c_in, c_out) for c_in, c_out in zip((1, *w[:-1]), w))
        self.encoder_ir = nn.ModuleList(ConvBlock(c_in, c_out) for c_in, c_out in zip((1, *w[:-1]), w))
        self.fuse = nn.ModuleList(FIFB(dim, heads, arch) for dim, heads in zip(w, arch.heads))
        self.decoder = nn.ModuleList(UpBlock(w[i + 1] + w[i], w[i]) for i in reversed(range(len(w) - 1)))
        self.head = nn.Conv2d(w[0], 1, 1)

    def forward(self, *, ir: Tensor, vi: Tensor) -> Tensor:
        min_side = 2 ** (len(self.encoder_vi) - 1)
        if ir.shape != vi.shape or ir.ndim != 4 or ir.shape[1] != 1 or min(ir.shape[-2:]) < min_side:
            raise ValueError(
                f"expected two (B,1,H,W) tensors of one shape with H,W >= {min_side}, "
                f"got {tuple(ir.shape)} and {tuple(vi.shape)}"
            )
        feats = zip(encoder_features(self.encoder_vi, vi), encoder_features(self.encoder_ir, ir))
        fused = [block(ir=f_ir, vi=f_vi) for block, (f_vi, f_ir) in zip(self.fuse, feats)]
        x = fused[-1]
        for up, skip in zip(self.decoder, reversed(fused[:-1])):
            x = up(skip, x)
        return self.head(x)


def build_model(arch: Arch, seed: int | None = None) -> FIFN:
    """A freshly initialised network for ``arch``; with ``seed``, initialised from that seed without touching
    the caller's global RNG state."""
    if seed is None:
        return FIFN(arch)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return FIFN(arch)


def encoder_features(stages: nn.ModuleList, x: Tensor) -> list[Tensor]:
    """Pre-pool feature of every encoder stage (scales 1, 1/2, 1/4, ...)."""
    feats = []
    for i, stage in enumerate(stages):
        x = stage(F.max_pool2d(x, 2) if i else x)
        feats.append(x)
    return feats


def to_tokens(x: Tensor) -> Tensor:
    """(B,C,H,W) -> (B,H,W,C); a view for channels_last maps."""
    return x.permute(0, 2, 3, 1)


def to_maps(x: Tensor) -> Tensor:
    """(B,H,W,C) -> (B,C,H,W); channels_last strides when ``x`` is contiguous."""
    return x.permute(0, 3, 1, 2)


def normalise_output(x: Tensor, per_image: bool) -> Tensor:
    """Min-max normalise the raw fused output to [0,1].

    ``per_image=True`` is the public test script (one image per forward); ``False`` is its training
    script (one min and max over the whole batch). A constant image maps to 0, not NaN.
    """
    dims = tuple(range(1 if per_image else 0, x.ndim))
    lo, hi = x.amin(dim=dims, keepdim=True), x.amax(dim=dims, keepdim=True)
    return (x - lo) / (hi - lo).clamp_min(torch.finfo(x.dtype).tiny)


@contextmanager
def batch_statistics(model: nn.Module) -> Iterator[None]:
    """Run BatchNorm on each forward's own statistics (train mode), leaving the running buffers untouched."""
    saved = {name: buf.clone() for name, buf in model.named_buffers()}
    was_training = model.training
    model.train()
    try:
        yield
    finally:
        model.train(was_training)
        with torch.no_grad():
            for name, buf in model.named_buffers():
                buf.copy_(saved[name])


def _infer_running_stats(model: FIFN, *, ir: Tensor, vi: Tensor) -> Tensor:
    """compat="fixed": eval mode, BatchNorm running statistics, the whole batch in one forward."""
    was_training = model.training
    model.eval()
    try:
        return model(ir=ir, vi=vi)
    finally:
        model.train(was_training)


def _infer_per_image_stats(model: FIFN, *, ir: Tensor, vi: Tensor) -> Tensor:
    """compat="official": the public test script never calls eval(), so BatchNorm normalises each
    image (one per forward) with its own statistics; reproduced image by image. This needs 2+
    pixels at scale 1/8 (e.g. 16x8); BatchNorm cannot normalise a single value."""
    with batch_statistics(model):
        return torch.cat([model(ir=ir[i : i + 1], vi=vi[i : i + 1]) for i in range(ir.shape[0])])


INFERENCE_RULES: MappingProxyType[str, Callable[..., Tensor]] = MappingProxyType(
    {"fixed": _infer_running_stats, "official": _infer_per_image_stats}
)
"""``arch.compat`` -> ``rule(model, *, ir, vi)``, the raw fused Y."""


def fuse_y(model: FIFN, *, ir: Tensor, vi: Tensor, rule: str | None = None) -> Tensor:
    """Fused Y in [0,1] (B,1,H,W) of the luminances ``ir``, ``vi`` by the inference rule ``rule`` (None: the one
    of ``model.arch.compat``), normalised per image.

    The model's mode and BatchNorm buffers are left as they were; no gradients are recorded.
    """
    with torch.no_grad():
        raw = INFERENCE_RULES[rule or model.arch.compat](model, ir=ir, vi=vi)
    return normalise_output(raw, per_image=True)
