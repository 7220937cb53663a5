"""Moment metrics: SD, CC, SCD, MSE and PSNR, batched, from the raw moments of (F, A, B).

Every one of them is a function of the pixel count, the sums Σx and the sums of products Σx·y of
the fused image F and the sources A, B. For integer grey levels these are integers below 2^53,
hence exact in float64 whatever the summation order, so a zero variance (e.g. of F - B where F = B)
is exactly zero and its correlation NaN, as in MATLAB. They come either from the images
(:func:`image_moments`) or, in the suite, from the joint histograms it builds for MI anyway
(:func:`moments_from_joints`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from occo.metrics.information import LEVELS


@dataclass(frozen=True)
class Moments:
    """Raw moments of images X_0..X_{K-1} per batch item: ``n`` pixels, ``sums`` (B, K) of Σ X_i and
    ``gram`` (B, K, K) of Σ X_i·X_j, float64."""

    n: int
    sums: torch.Tensor
    gram: torch.Tensor


def image_moments(*images: torch.Tensor) -> Moments:
    """Moments of (B, H, W) images of one shape, e.g. ``image_moments(f, a, b)``."""
    return stack_moments(torch.stack(images, dim=1))


def stack_moments(x: torch.Tensor) -> Moments:
    """Moments of the images stacked on dim 1 of ``x`` (B, K, H, W), with one matrix product."""
    x = x.flatten(2).double()
    return Moments(x.shape[-1], x.sum(dim=-1), x @ x.transpose(1, 2))


def moments_from_joints(joints: torch.Tensor, sources: Moments) -> Moments:
    """Moments of (F, A, B) from the joint counts (B, 2, 256, 256) of A and B (rows) with F (columns)
    and the moments of (A, B); counts times integer levels stay exact in float64."""
    lv = torch.arange(LEVELS, dtype=joints.dtype, device=joints.device)
    hist_f = joints[:, 0].sum(dim=1)
    s_f = hist_f @ lv
    s_ff = hist_f @ (lv * lv)
    s_fx = (joints @ lv) @ lv  # (B, 2): Σ F·A, Σ F·B
    k = joints.shape[0]
    gram = torch.empty(k, 3, 3, dtype=joints.dtype, device=joints.device)
    gram[:, 1:, 1:] = sources.gram
    gram[:, 0, 0] = s_ff
    gram[:, 0, 1:] = s_fx
    gram[:, 1:, 0] = s_fx
    return Moments(sources.n, torch.cat([s_f[:, None], sources.sums], dim=1), gram)


def _vec(m: Moments, u: list[float]) -> torch.Tensor:
    return torch.tensor(u, dtype=m.gram.dtype, device=m.gram.device)


def _bilinear(m: Moments, u: list[float], v: list[float]) -> torch.Tensor:
    """Σ (u·X)(v·X) = uᵀGv for coefficient vectors ``u``, ``v`` over the images (exact for integer images)."""
    return (m.gram @ _vec(m, v)) @ _vec(m, u)


def _ncov(m: Moments, u: list[float], v: list[float]) -> torch.Tensor:
    """n · cov(u·X, v·X) = uᵀGv - (u·s)(v·s)/n."""
    return _bilinear(m, u, v) - (m.sums @ _vec(m, u)) * (m.sums @ _vec(m, v)) / m.n


def _corr(m: Moments, u: list[float], v: list[float]) -> torch.Tensor:
    """Pearson correlation of u·X and v·X (MATLAB ``corr2``); 0/0 = NaN for a constant one."""
    return _ncov(m, u, v) / torch.sqrt(_ncov(m, u, u) * _ncov(m, v, v))


_F, _A, _B = [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]
_F_A, _F_B = [1.0, -1.0, 0.0], [1.0, 0.0, -1.0]


def standard_deviation(m: Moments) -> torch.Tensor:
    """SD: population standard deviation ``sqrt(Σ (F - μ_F)² / MN)`` of the fused image (the first one)."""
    s_f = m.sums[:, 0]
    return torch.sqrt((m.gram[:, 0, 0] - s_f * s_f / m.n) / m.n)


def correlation_coefficient(m: Moments) -> torch.Tensor:
    """CC = (r(A, F) + r(B, F)) / 2, the mean Pearson correlation of the fused image with each source."""
    return (_corr(m, _A, _F) + _corr(m, _B, _F)) / 2


def scd(m: Moments) -> torch.Tensor:
    """SCD = r(F - B, A) + r(F - A, B): sum of the correlations of differences (Aslantas & Bendes 2015)."""
    return _corr(m, _F_B, _A) + _corr(m, _F_A, _B)


def mse(m: Moments, *, scale: float = 1.0) -> torch.Tensor:
    """MSE = (mean((F - A)²) + mean((F - B)²)) / 2 of the images divided by ``scale`` (255: MATLAB ``im2double``)."""
    return (_bilinear(m, _F_A, _F_A) + _bilinear(m, _F_B, _F_B)) / (2 * m.n * scale * scale)


def psnr(m: Moments, *, peak: torch.Tensor | float, scale: float = 1.0) -> torch.Tensor:
    """PSNR = 10 log10(peak² / MSE) with MSE from :func:`mse` on the images divided by ``scale``.

    The MATLAB code passes images in [0, 1] (``scale=255``) but ``peak = 255`` (hence values near
    60 dB); the CDDFuse evaluator passes 0..255 images and ``peak = max(F)`` per image.
    """
    err = mse(m, scale=scale)
    return 10 * torch.log10(torch.as_tensor(peak, dtype=err.dtype, device=err.device) ** 2 / err)
