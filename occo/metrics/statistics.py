"""Moment metrics: SD, CC, SCD, MSE and PSNR, batched over (B, H, W) grey images."""

from __future__ import annotations

import torch


def standard_deviation(f: torch.Tensor) -> torch.Tensor:
    """SD: population standard deviation ``sqrt(Σ (F - μ_F)² / MN)`` of the fused image."""
    return f.flatten(1).std(dim=1, correction=0)


def pearson(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of each image pair, ``Σ x̃ỹ / sqrt(Σ x̃² Σ ỹ²)`` with ``x̃ = x - mean(x)``.

    MATLAB ``corr2``. A constant image gives NaN (0/0), as in MATLAB.
    """
    x = x.flatten(1)
    y = y.flatten(1)
    xc = x - x.mean(dim=1, keepdim=True)
    yc = y - y.mean(dim=1, keepdim=True)
    return (xc * yc).sum(dim=1) / torch.sqrt((xc * xc).sum(dim=1) * (yc * yc).sum(dim=1))


def correlation_coefficient(f: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """CC = (r(A, F) + r(B, F)) / 2, the mean Pearson correlation of the fused image with each source."""
    return (pearson(a, f) + pearson(b, f)) / 2


def scd(f: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """SCD = r(F - B, A) + r(F - A, B): sum of the correlations of differences (Aslantas & Bendes 2015)."""
    return pearson(f - b, a) + pearson(f - a, b)


def mse(f: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """MSE = (mean((F - A)²) + mean((F - B)²)) / 2 on the scale the inputs are given in."""
    return (((f - a) ** 2).flatten(1).mean(dim=1) + ((f - b) ** 2).flatten(1).mean(dim=1)) / 2


def psnr(f: torch.Tensor, a: torch.Tensor, b: torch.Tensor, *, peak: torch.Tensor | float) -> torch.Tensor:
    """PSNR = 10 log10(peak² / MSE) with MSE from :func:`mse` on the inputs' scale.

    The MATLAB code passes images in [0, 1] but ``peak = 255`` (hence values near 60 dB); the
    CDDFuse evaluator passes 0..255 images and ``peak = max(F)`` per image.
    """
    return 10 * torch.log10(torch.as_tensor(peak, dtype=f.dtype, device=f.device) ** 2 / mse(f, a, b))
