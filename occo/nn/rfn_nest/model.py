"""RFN-Nest (Li, Wu, Kittler, Information Fusion 73, 2021): the NestFuse auto-encoder with the residual fusion
network (RFN), as OCCO §4.5 uses it (Fig. 20).

    ir, vi (B,1,H,W) in [0,1] -> x 255: the network works on grey levels 0..255 (its biases make it scale-dependent)
      -> one encoder, shared by both modalities: 1x1 stem (16 channels), then per scale a block
         (3x3 conv to half its input channels, 1x1 conv to the scale's width), 2x2 max-pool between scales
      -> one residual fusion block per scale: relu(conv3x3([ir, vi])) + bottleneck([conv3x3(ir), conv3x3(vi)])
      -> nest decoder (UNet++-style): cell (i, j) of scale i fuses [f_i, x_i1 .. x_i(j-1), up(x_(i+1)(j-1))]
      -> 1x1 conv to one channel; raw output >= 0 (every conv, the output conv included, ends in a ReLU)

Every convolution reflection-pads its input; up-sampling is nearest x2, and where pooling floored an odd size
the missing last row/column is repeated (the authors' test pads it by reflection, which gives the same values
on a nearest-x2 map). The encoder and decoder are trained first as an auto-encoder (``autoencoder``), then the
RFN with them frozen (occo.train.stages). ``finish`` is the authors' test-time post-processing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from occo.config import Arch

GREY = 255.0
"""The network's input and training scale: grey levels 0..255."""
STEM = 16
"""Channels of the encoder's 1x1 stem."""
EPSILON = 1e-5
"""Added to the output range by the authors' test-time min-max."""


def reflect_conv(c_in: int, c_out: int, k: int) -> nn.Conv2d:
    """A k x k convolution over a reflection-padded input (padding k // 2), output of the input's size."""
    return nn.Conv2d(c_in, c_out, k, padding=k // 2, padding_mode="reflect")


class NestBlock(nn.Module):
    """Two conv units: 3x3 to half the input channels, then 1x1 to ``c_out``, each followed by a ReLU."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.spatial = reflect_conv(c_in, c_in // 2, 3)
        self.project = reflect_conv(c_in // 2, c_out, 1)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.project(F.relu(self.spatial(x))))


class NestEncoder(nn.Module):
    """The stem and one block per scale; returns the feature of every scale (full size, 1/2, 1/4, ...)."""

    def __init__(self, widths: list[int]) -> None:
        super().__init__()
        self.stem = reflect_conv(1, STEM, 1)
        self.blocks = nn.ModuleList(NestBlock(c_in, c_out) for c_in, c_out in zip((STEM, *widths[:-1]), widths))

    def forward(self, x: Tensor) -> list[Tensor]:
        x = F.relu(self.stem(x))
        feats = []
        for i, block in enumerate(self.blocks):
            x = block(F.max_pool2d(x, 2) if i else x)
            feats.append(x)
        return feats


def upsample_to(x: Tensor, like: Tensor) -> Tensor:
    """Nearest x2 up-sampling of ``x``, its last row/column repeated where ``like`` is one larger (odd size)."""
    up = F.interpolate(x, scale_factor=2, mode="nearest")
    dh, dw = like.shape[-2] - up.shape[-2], like.shape[-1] - up.shape[-1]
    return F.pad(up, (0, dw, 0, dh), mode="replicate") if dh or dw else up


def cell_names(scales: int) -> list[tuple[int, int]]:
    """The decoder cells (scale i, column j), 1-based as the paper's DCB_ij, in an order that computes every
    input first: column by column, finest scale first."""
    return [(i, j) for j in range(1, scales) for i in range(1, scales - j + 1)]


class NestDecoder(nn.Module):
    """Nest connections: cell (i, j) sees the encoder feature of scale i, the cells (i, 1..j-1) and the
    up-sampled cell (i+1, j-1); the cell (1, scales-1) gives the output through a 1x1 conv and a ReLU."""

    def __init__(self, widths: list[int]) -> None:
        super().__init__()
        n = len(widths)
        self.cells = nn.ModuleDict(
            {f"{i}_{j}": NestBlock(j * widths[i - 1] + widths[i], widths[i - 1]) for i, j in cell_names(n)}
        )
        self.head = reflect_conv(widths[0], 1, 1)

    def forward(self, feats: list[Tensor]) -> Tensor:
        x = {(i + 1, 0): f for i, f in enumerate(feats)}
        for i, j in cell_names(len(feats)):
            row = [x[(i, k)] for k in range(j)]
            x[(i, j)] = self.cells[f"{i}_{j}"](torch.cat([*row, upsample_to(x[(i + 1, j - 1)], row[0])], 1))
        return F.relu(self.head(x[(1, len(feats) - 1)]))


class ResidualFusionBlock(nn.Module):
    """One RFN block: ``relu(conv3x3([ir, vi])) + relu(conv3x3(relu(conv3x3(relu(conv1x1(y))))))`` with
    ``y = [relu(conv3x3(ir)), relu(conv3x3(vi))]``; the residual sum has no ReLU."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.initial = reflect_conv(2 * dim, dim, 3)
        self.ir = reflect_conv(dim, dim, 3)
        self.vi = reflect_conv(dim, dim, 3)
        self.bottleneck = nn.ModuleList(
            [reflect_conv(2 * dim, dim, 1), reflect_conv(dim, dim, 3), reflect_conv(dim, dim, 3)]
        )

    def forward(self, *, ir: Tensor, vi: Tensor) -> Tensor:
        y = torch.cat((F.relu(self.ir(ir)), F.relu(self.vi(vi))), 1)
        for conv in self.bottleneck:
            y = F.relu(conv(y))
        return F.relu(self.initial(torch.cat((ir, vi), 1))) + y


class RFNNest(nn.Module):
    """``model(ir=, vi=)`` -> raw fused output (B,1,H,W) on the 0..255 scale; ``features=True`` also returns
    ``{"fused": [Φ_f^m], "ir": [Φ_ir^m], "vi": [Φ_vi^m]}`` (Eq. 23's features, finest scale first)."""

    def __init__(self, arch: Arch) -> None:
        super().__init__()
        if arch.name != "rfn_nest":
            raise ValueError(f"RFNNest is built from arch.name rfn_nest, got {arch.name}")
        self.arch = arch
        widths = list(arch.nest_widths)
        self.encoder = NestEncoder(widths)
        self.rfn = nn.ModuleList(ResidualFusionBlock(c) for c in widths)
        self.decoder = NestDecoder(widths)

    @property
    def min_side(self) -> int:
        """The smallest image side: the coarsest scale needs two pixels for its reflection padding."""
        return 2 ** len(self.rfn)

    def forward(self, *, ir: Tensor, vi: Tensor, features: bool = False) -> Tensor | tuple[Tensor, dict]:
        if ir.shape != vi.shape or ir.ndim != 4 or ir.shape[1] != 1 or min(ir.shape[-2:]) < self.min_side:
            raise ValueError(
                f"expected two (B,1,H,W) tensors of one shape with H,W >= {self.min_side}, "
                f"got {tuple(ir.shape)} and {tuple(vi.shape)}"
            )
        f_ir, f_vi = self.encoder(ir * GREY), self.encoder(vi * GREY)
        fused = [block(ir=a, vi=b) for block, a, b in zip(self.rfn, f_ir, f_vi)]
        raw = self.decoder(fused)
        return (raw, {"fused": fused, "ir": f_ir, "vi": f_vi}) if features else raw


class NestAutoEncoder(nn.Module):
    """The encoder and decoder of an ``RFNNest`` as one auto-encoder (its parameters are the model's):
    ``autoencoder(x)`` -> reconstruction of the (B,1,H,W) image ``x`` in [0,1], on the 0..255 scale."""

    def __init__(self, model: RFNNest) -> None:
        super().__init__()
        self.encoder, self.decoder = model.encoder, model.decoder

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.encoder(x * GREY))


def nest_output(raw: Tensor) -> Tensor:
    """The authors' test-time output rule, per image: ``(x - min) / (max - min + 1e-5) * 255`` in float32 (no
    clamp), truncated to an integer grey level; returned as that level / 255, so an 8-bit PNG holds it exactly."""
    x = raw.float()
    lo, hi = x.amin(dim=(1, 2, 3), keepdim=True), x.amax(dim=(1, 2, 3), keepdim=True)
    return torch.floor((x - lo) / (hi - lo + EPSILON) * GREY) / GREY


def nest_infer(model: RFNNest, *, ir: Tensor, vi: Tensor) -> Tensor:
    """Raw output in eval mode without gradients (the network has no BatchNorm or dropout: mode changes
    nothing); the model's mode is left as it was."""
    with torch.no_grad():
        return model(ir=ir, vi=vi)
