"""Colour: RGB <-> YCbCr for fusion (the luminance channel is fused, chroma is carried over) and the ImageNet
normalisation of the pretrained networks.

Convention: BT.601 luma with full-range [0,1] chroma offset by 0.5, exactly as the
infrared-visible fusion literature implements it (SeAFusion's ``RGB2YCrCb``/``YCrCb2RGB``,
reused by TarDAL and later methods)::

    Y  = 0.299 R + 0.587 G + 0.114 B
    Cr = (R - Y) * 0.713 + 0.5
    Cb = (B - Y) * 0.564 + 0.5

    R = Y + 1.403 (Cr - 0.5)
    G = Y - 0.714 (Cr - 0.5) - 0.344 (Cb - 0.5)
    B = Y + 1.773 (Cb - 0.5)

The inverse constants are rounded to three decimals, so a round trip is exact only to about
5e-4. Channels are ordered Y, Cb, Cr. Nothing is clamped; clamp fused RGB yourself.
"""

from __future__ import annotations

import torch

from occo.data.io import DataError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
"""Per-channel RGB mean of ImageNet: the input normalisation of every ImageNet-pretrained network we load
(VGG19, the DeepLabV3+ encoders, Grounding DINO's Swin)."""
IMAGENET_STD = (0.229, 0.224, 0.225)
"""Per-channel RGB standard deviation of ImageNet (see ``IMAGENET_MEAN``)."""


def _check(x: torch.Tensor, fn: str) -> None:
    if x.ndim < 3 or x.shape[-3] != 3:
        raise DataError(f"{fn} expects a (...,3,H,W) tensor, got shape {tuple(x.shape)}")


def rgb_to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    """(...,3,H,W) RGB in [0,1] -> (...,3,H,W) with channels Y, Cb, Cr."""
    _check(x, "rgb_to_ycbcr")
    r, g, b = x.unbind(-3)
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cr = (r - y) * 0.713 + 0.5
    cb = (b - y) * 0.564 + 0.5
    return torch.stack((y, cb, cr), dim=-3)


def ycbcr_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """(...,3,H,W) with channels Y, Cb, Cr -> (...,3,H,W) RGB (not clamped)."""
    _check(x, "ycbcr_to_rgb")
    y, cb, cr = x.unbind(-3)
    cb = cb - 0.5
    cr = cr - 0.5
    r = y + 1.403 * cr
    g = y - 0.714 * cr - 0.344 * cb
    b = y + 1.773 * cb
    return torch.stack((r, g, b), dim=-3)
