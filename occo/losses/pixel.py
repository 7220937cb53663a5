"""Pixel loss (Eq. 15-19): SSIM (Eq. 15), intensity (Eq. 17) with the infrared-brighter mask (Eq. 16),
Sobel texture (Eq. 18), combined by Eq. 19.

Images are (B, 1, H, W) in [0, 1]; the sources are keyword-only (``ir=``, ``vi=``). Every term runs in
float32 with autocast disabled and returns a scalar (mean over the batch). With the public code's weights
ω4 = 10, ω5 = 1: ``L_pixel = L_ssim + ω4 L_int + ω5 L_tex``.
"""

from __future__ import annotations

import torch
from kornia.filters import spatial_gradient
from pytorch_msssim import ssim
from torch import nn


def _fp32(*xs: torch.Tensor) -> list[torch.Tensor]:
    return [x.float() for x in xs]


def ssim_loss(fused: torch.Tensor, *, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
    """Eq. 15: ``L_ssim = 2 - SSIM(F, I_vi) - SSIM(F, I_ir)``.

    SSIM of Wang et al. 2004 (pytorch-msssim): Gaussian window 11, σ = 1.5, K = (0.01, 0.03), data
    range 1, mean over the valid (unpadded) map.
    """
    with torch.autocast(device_type=fused.device.type, enabled=False):
        f, v, i = _fp32(fused, vi, ir)
        s = ssim(f, v, data_range=1.0, size_average=False) + ssim(f, i, data_range=1.0, size_average=False)
        return (2.0 - s).mean()


def infrared_brighter_mask(*, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
    """Eq. 16: ``M = 1[I_ir > I_vi]``, pixels where the infrared image is brighter (float 0/1)."""
    return (ir.float() > vi.float()).float()


def intensity_loss(fused: torch.Tensor, *, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
    """Eq. 17: ``L_int = mean (F - I_vi)² + mean M ⊙ |F - I_ir|`` with M of Eq. 16 (means over all pixels)."""
    f, v, i = _fp32(fused, vi, ir)
    return (f - v).pow(2).mean() + (infrared_brighter_mask(ir=i, vi=v) * (f - i).abs()).mean()


def sobel_abs(x: torch.Tensor) -> torch.Tensor:
    """``(|∂x I|, |∂y I|)`` as (B, C, 2, H, W): unnormalised 3×3 Sobel (kornia), replicate border."""
    return spatial_gradient(x, mode="sobel", order=1, normalized=False).abs()


def texture_loss(fused: torch.Tensor, *, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
    """Eq. 18: ``L_tex = Σ_{d∈{x,y}} mean | |∂_d F| - max(|∂_d I_vi|, |∂_d I_ir|) |``.

    The paper writes one ``|∇·|``; the public code and this function take the L1 of the x and y Sobel
    responses separately and add them.
    """
    with torch.autocast(device_type=fused.device.type, enabled=False):
        f, v, i = _fp32(fused, vi, ir)
        joint = torch.maximum(sobel_abs(v), sobel_abs(i))
        return (sobel_abs(f) - joint).abs().mean(dim=(0, 1, 3, 4)).sum()


def pixel_loss(
    l_ssim: torch.Tensor, l_int: torch.Tensor, l_tex: torch.Tensor, omega4: float, omega5: float
) -> torch.Tensor:
    """Eq. 19: ``L_pixel = L_ssim + ω4 L_int + ω5 L_texture``."""
    return l_ssim + omega4 * l_int + omega5 * l_tex


class PixelLoss(nn.Module):
    """Eq. 15-19; ``forward(fused, ir=, vi=)`` returns ``{ssim, intensity, texture, pixel}`` scalars."""

    def __init__(self, omega4: float, omega5: float) -> None:
        super().__init__()
        self.omega4, self.omega5 = omega4, omega5

    def forward(self, fused: torch.Tensor, *, ir: torch.Tensor, vi: torch.Tensor) -> dict[str, torch.Tensor]:
        terms = {
            "ssim": ssim_loss(fused, ir=ir, vi=vi),
            "intensity": intensity_loss(fused, ir=ir, vi=vi),
            "texture": texture_loss(fused, ir=ir, vi=vi),
        }
        terms["pixel"] = pixel_loss(terms["ssim"], terms["intensity"], terms["texture"], self.omega4, self.omega5)
        return terms

    def extra_repr(self) -> str:
        return f"omega4={self.omega4}, omega5={self.omega5}"
