"""Gradient metrics: SF, AG and Qabf (Xydeas & Petrović), batched over (B, H, W) grey images."""

from __future__ import annotations

import math

import torch

from occo.metrics.filters import sobel_conv

# Xydeas & Petrović (2000) sigmoid parameters, as in every public Qabf implementation.
_TG, _KG, _DG = 0.9994, -15.0, 0.5
_TA, _KA, _DA = 0.9879, -22.0, 0.8


def spatial_frequency(f: torch.Tensor) -> torch.Tensor:
    """SF = sqrt(RF² + CF²), RF² = mean((F[i+1,j] - F[i,j])²), CF² = mean((F[i,j+1] - F[i,j])²).

    Each mean runs over its own difference array ((M-1)·N and M·(N-1) terms).
    """
    rf = (f[:, 1:, :] - f[:, :-1, :]).pow(2).flatten(1).mean(dim=1)
    cf = (f[:, :, 1:] - f[:, :, :-1]).pow(2).flatten(1).mean(dim=1)
    return torch.sqrt(rf + cf)


def average_gradient(f: torch.Tensor, *, normalise: str = "matlab") -> torch.Tensor:
    """AG = Σ sqrt((∂xF² + ∂yF²) / 2) / D.

    Derivatives as MATLAB ``gradient``: central differences ``(F[j+1] - F[j-1]) / 2`` inside,
    one-sided differences on the borders. ``normalise='matlab'``: ``D = (M-1)(N-1)`` as the
    MATLAB code divides; ``'mean'``: ``D = MN`` (plain mean, CDDFuse evaluator).
    """
    gy, gx = torch.gradient(f, dim=(1, 2))
    total = torch.sqrt((gx * gx + gy * gy) / 2).flatten(1).sum(dim=1)
    m, n = f.shape[1], f.shape[2]
    if normalise == "matlab":
        return total / ((m - 1) * (n - 1))
    if normalise == "mean":
        return total / (m * n)
    raise ValueError(f"unknown AG normalisation {normalise!r}; use 'matlab' or 'mean'")


def _edge_strength_orientation(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sobel magnitude ``g = sqrt(sx² + sy²)`` and orientation ``α = atan(sy / sx)`` (π/2 where sx = 0)."""
    sx, sy = sobel_conv(x)
    g = torch.sqrt(sx * sx + sy * sy)
    alpha = torch.where(sx == 0, math.pi / 2, torch.atan(sy / sx))
    return g, alpha


def _edge_preservation(g_src: torch.Tensor, a_src: torch.Tensor, g_f: torch.Tensor, a_f: torch.Tensor) -> torch.Tensor:
    """Q^{XF} = Q_g · Q_α, the per-pixel edge preservation of source X in F.

    ``G = min(g_X, g_F) / max(g_X, g_F)``, except — as every MATLAB copy does — ``G = g_F`` where
    ``g_X = g_F`` (so the result depends on the image scale); ``A = 1 - |α_X - α_F| / (π/2)``;
    ``Q_g = Tg / (1 + e^{kg(G - Dg)})``, ``Q_α = Ta / (1 + e^{ka(A - Da)})``.
    """
    tie = g_src == g_f
    ratio = torch.where(tie, g_f, torch.minimum(g_src, g_f) / torch.where(tie, 1.0, torch.maximum(g_src, g_f)))
    orient = 1 - torch.abs(a_src - a_f) / (math.pi / 2)
    return _TG * torch.sigmoid(-_KG * (ratio - _DG)) * _TA * torch.sigmoid(-_KA * (orient - _DA))


def qabf(f: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Qabf = Σ (Q^{AF} g_A + Q^{BF} g_B) / Σ (g_A + g_B) (Xydeas & Petrović 2000).

    Sobel responses by ``conv2(·, 'same')`` with zero padding. Inputs' scale matters (see
    :func:`_edge_preservation`): the MATLAB code passes images in [0, 1], CDDFuse 0..255.
    """
    g, alpha = _edge_strength_orientation(torch.cat([f, a, b]))
    g_f, g_a, g_b = g.chunk(3)
    a_f, a_a, a_b = alpha.chunk(3)
    num = _edge_preservation(g_a, a_a, g_f, a_f) * g_a + _edge_preservation(g_b, a_b, g_f, a_f) * g_b
    return num.flatten(1).sum(dim=1) / (g_a + g_b).flatten(1).sum(dim=1)
