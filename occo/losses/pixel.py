"""Pixel loss (Eq. 15-19): SSIM (Eq. 15), intensity (Eq. 17) with the infrared-brighter mask (Eq. 16),
Sobel texture (Eq. 18), combined by Eq. 19.

Images are (B, 1, H, W) in [0, 1]; the sources are keyword-only (``ir=``, ``vi=``). Every term runs in
float32 with autocast disabled and returns a scalar (mean over the batch). With the public code's weights
ω4 = 10, ω5 = 1: ``L_pixel = L_ssim + ω4 L_int + ω5 L_tex``.

``compat`` (param ``loss.compat``) picks how SSIM and Sobel treat the border: ``fixed`` the valid SSIM map
and a replicated border, ``official`` zero padding for both, as the authors' code (d5, d6 in
docs/fidelity.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from kornia.filters import spatial_gradient
from pytorch_msssim import ssim
from torch import nn

SSIM_WINDOW, SSIM_SIGMA, SSIM_C1, SSIM_C2 = 11, 1.5, 0.01**2, 0.03**2
"""Wang et al. 2004: Gaussian window 11, σ = 1.5, C1 = (0.01·L)², C2 = (0.03·L)² with data range L = 1."""


def _fp32(*xs: torch.Tensor) -> list[torch.Tensor]:
    return [x.float() for x in xs]


def valid_ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """SSIM of Wang et al. 2004 per image (B,) by pytorch-msssim: separable Gaussian window, data range 1,
    mean over the valid (unpadded) map, so the border invents no structure (``compat: fixed``)."""
    return ssim(a, b, data_range=1.0, win_size=SSIM_WINDOW, win_sigma=SSIM_SIGMA, size_average=False)


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """(1, 1, size, size) ``g gᵀ`` with ``g_k ∝ exp(-(k - size//2)² / 2σ²)`` normalised to sum 1 (in float32,
    as the authors' vendored pytorch_ssim builds it)."""
    g = torch.tensor([math.exp(-((k - size // 2) ** 2) / float(2 * sigma**2)) for k in range(size)])
    g = (g / g.sum()).unsqueeze(1)
    return (g @ g.t())[None, None]


def zero_padded_ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """SSIM per image (B,) as the authors' vendored pytorch_ssim computes it (d5): the 2-D Gaussian window
    convolved with **zero** padding of 5, so the map is H×W and its border sees black around the image;
    ``((2μaμb + C1)(2σab + C2)) / ((μa² + μb² + C1)(σa² + σb² + C2))`` averaged over the map."""
    w = gaussian_window().to(a)
    pad = SSIM_WINDOW // 2
    mu_a, mu_b = F.conv2d(a, w, padding=pad), F.conv2d(b, w, padding=pad)
    mu_aa, mu_bb, mu_ab = mu_a.pow(2), mu_b.pow(2), mu_a * mu_b
    var_a = F.conv2d(a * a, w, padding=pad) - mu_aa
    var_b = F.conv2d(b * b, w, padding=pad) - mu_bb
    cov = F.conv2d(a * b, w, padding=pad) - mu_ab
    index = ((2 * mu_ab + SSIM_C1) * (2 * cov + SSIM_C2)) / ((mu_aa + mu_bb + SSIM_C1) * (var_a + var_b + SSIM_C2))
    return index.mean(dim=(1, 2, 3))


SSIM_FORMS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "fixed": valid_ssim,
    "official": zero_padded_ssim,
}
"""``loss.compat`` → per-image SSIM (B,) of Eq. 15."""


def ssim_loss(fused: torch.Tensor, *, ir: torch.Tensor, vi: torch.Tensor, compat: str) -> torch.Tensor:
    """Eq. 15: ``L_ssim = 2 - SSIM(F, I_vi) - SSIM(F, I_ir)``, SSIM of Wang et al. 2004 (window 11, σ = 1.5,
    K = (0.01, 0.03), data range 1) with the border of ``compat`` (:data:`SSIM_FORMS`), mean over the batch."""
    similarity = SSIM_FORMS[compat]
    with torch.autocast(device_type=fused.device.type, enabled=False):
        f, v, i = _fp32(fused, vi, ir)
        return ((1.0 - similarity(v, f)) + (1.0 - similarity(i, f))).mean()


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


SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))
"""The unnormalised 3×3 Sobel kernel in x (its transpose, up to a sign that ``abs`` removes, is y's)."""


def zero_padded_sobel_abs(x: torch.Tensor) -> torch.Tensor:
    """``(|∂x I|, |∂y I|)`` as (B, 1, 2, H, W) as the authors' ``Sobelxy`` computes them (d6): the same 3×3
    kernels with **zero** padding, so a bright image has edges along its border."""
    kx = torch.tensor(SOBEL_X, dtype=x.dtype, device=x.device)
    kernels = torch.stack([kx, kx.t()])[:, None]  # (2, 1, 3, 3)
    return F.conv2d(x, kernels, padding=1).abs().unsqueeze(1)


SOBEL_FORMS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "fixed": sobel_abs,
    "official": zero_padded_sobel_abs,
}
"""``loss.compat`` → ``(|∂x I|, |∂y I|)`` of Eq. 18 as (B, 1, 2, H, W)."""


def texture_loss(fused: torch.Tensor, *, ir: torch.Tensor, vi: torch.Tensor, compat: str) -> torch.Tensor:
    """Eq. 18: ``L_tex = Σ_{d∈{x,y}} mean | |∂_d F| - max(|∂_d I_vi|, |∂_d I_ir|) |``, the Sobel border of
    ``compat`` (:data:`SOBEL_FORMS`).

    The paper writes one ``|∇·|``; the public code and this function take the L1 of the x and y Sobel
    responses separately and add them.
    """
    gradient = SOBEL_FORMS[compat]
    with torch.autocast(device_type=fused.device.type, enabled=False):
        f, v, i = _fp32(fused, vi, ir)
        joint = torch.maximum(gradient(v), gradient(i))
        return (gradient(f) - joint).abs().mean(dim=(0, 1, 3, 4)).sum()


def pixel_loss(
    l_ssim: torch.Tensor, l_int: torch.Tensor, l_tex: torch.Tensor, omega4: float, omega5: float
) -> torch.Tensor:
    """Eq. 19: ``L_pixel = L_ssim + ω4 L_int + ω5 L_texture``."""
    return l_ssim + omega4 * l_int + omega5 * l_tex


class PixelLoss(nn.Module):
    """Eq. 15-19; ``forward(fused, ir=, vi=)`` returns ``{ssim, intensity, texture, pixel}`` scalars.

    ``compat``: the border of SSIM and Sobel (:data:`SSIM_FORMS`, :data:`SOBEL_FORMS`).
    """

    def __init__(self, *, omega4: float, omega5: float, compat: str) -> None:
        super().__init__()
        if compat not in SSIM_FORMS:
            raise ValueError(f"unknown loss.compat {compat!r}; choose from {', '.join(SSIM_FORMS)}")
        self.omega4, self.omega5, self.compat = omega4, omega5, compat

    def forward(self, fused: torch.Tensor, *, ir: torch.Tensor, vi: torch.Tensor) -> dict[str, torch.Tensor]:
        terms = {
            "ssim": ssim_loss(fused, ir=ir, vi=vi, compat=self.compat),
            "intensity": intensity_loss(fused, ir=ir, vi=vi),
            "texture": texture_loss(fused, ir=ir, vi=vi, compat=self.compat),
        }
        terms["pixel"] = pixel_loss(terms["ssim"], terms["intensity"], terms["texture"], self.omega4, self.omega5)
        return terms

    def extra_repr(self) -> str:
        return f"omega4={self.omega4}, omega5={self.omega5}, compat={self.compat}"
