"""Gradient metrics: SF, AG and Qabf (Xydeas & Petrović), batched over (B, H, W) grey images.

Each is computed in the dtype of its input and summed in float64. On integer grey levels float32
loses nothing in SF and AG (differences, squares and their sums are exact small integers or
quarters; AG's square root is taken in float64), so the suite passes float32 there. Qabf needs
float64: in float32 its orientation term (atan and the sigmoid of 22·(A - 0.8)) moves it by more
than the 1e-8 relative the MATLAB reference is held to (docs/metrics.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from occo.metrics.filters import row_strips, sobel_conv

# Xydeas & Petrović (2000) sigmoid parameters, as in every public Qabf implementation.
_TG, _KG, _DG = 0.9994, -15.0, 0.5
_TA, _KA, _DA = 0.9879, -22.0, 0.8


def _sum64(x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    return x.sum(dim=dims, dtype=torch.float64)


def spatial_frequency(f: torch.Tensor) -> torch.Tensor:
    """SF = sqrt(RF² + CF²), RF² = mean((F[i+1,j] - F[i,j])²), CF² = mean((F[i,j+1] - F[i,j])²).

    Each mean runs over its own difference array ((M-1)·N and M·(N-1) terms).
    """
    m, n = f.shape[1], f.shape[2]
    dr = f[:, 1:, :] - f[:, :-1, :]
    dc = f[:, :, 1:] - f[:, :, :-1]
    return torch.sqrt(_sum64(dr * dr, (1, 2)) / ((m - 1) * n) + _sum64(dc * dc, (1, 2)) / (m * (n - 1)))


def average_gradient(f: torch.Tensor, *, normalise: str = "matlab") -> torch.Tensor:
    """AG = Σ sqrt((∂xF² + ∂yF²) / 2) / D.

    Derivatives as MATLAB ``gradient``: central differences ``(F[j+1] - F[j-1]) / 2`` inside,
    one-sided differences on the borders. ``normalise='matlab'``: ``D = (M-1)(N-1)`` as the
    MATLAB code divides; ``'mean'``: ``D = MN`` (plain mean, CDDFuse evaluator).
    """
    m, n = f.shape[1], f.shape[2]
    if normalise == "matlab":
        d = (m - 1) * (n - 1)
    elif normalise == "mean":
        d = m * n
    else:
        raise ValueError(f"unknown AG normalisation {normalise!r}; use 'matlab' or 'mean'")
    gy, gx = torch.gradient(f, dim=(1, 2))
    sq = (gx * gx + gy * gy).double()
    return _sum64(torch.sqrt(sq / 2), (1, 2)) / d


@dataclass(frozen=True)
class EdgeMaps:
    """Sobel edge strength ``g = sqrt(sx² + sy²)`` and orientation ``α = atan(sy / sx)`` (π/2 where
    sx = 0) of a stack of images (B, C, H, W)."""

    strength: torch.Tensor
    angle: torch.Tensor


def _edge_strips(x: torch.Tensor) -> Iterator[tuple[slice, EdgeMaps]]:
    """``(r, EdgeMaps of rows r)`` of ``x`` (B, C, H, W) strip by strip: Sobel responses of ``x`` zero
    padded once, each strip with its one-row halo (the strip's own border is cropped)."""
    padded = F.pad(x, (1, 1, 1, 1))
    for r in row_strips(x.shape[-2], x.shape[-1], x.device, halo=2):
        sx, sy = sobel_conv(padded[:, :, r.start : r.stop + 2])
        sx, sy = sx[:, :, 1:-1, 1:-1], sy[:, :, 1:-1, 1:-1]
        # atan(sy / sx) as atan2 of the direction turned to sx >= 0 (the same angle to the last bit or
        # so, without the division and cheaper than atan on CPU); atan2(1, 0) = π/2 where sx = 0.
        angle = torch.atan2(torch.sign(sx).mul_(sy).add_(sx == 0), sx.abs())
        yield r, EdgeMaps(torch.sqrt(sx * sx + sy * sy), angle)


def edge_maps(x: torch.Tensor) -> EdgeMaps:
    """:class:`EdgeMaps` of ``x`` (B, C, H, W), Sobel responses by ``conv2(·, 'same')`` with zero padding."""
    strength, angle = torch.empty_like(x), torch.empty_like(x)
    for r, e in _edge_strips(x):
        strength[:, :, r], angle[:, :, r] = e.strength, e.angle
    return EdgeMaps(strength, angle)


@dataclass(frozen=True)
class QabfSources:
    """The source-only part of Qabf: edge maps of the sources (B, C, H, W) and their total strength ``Σ g`` (B,)."""

    edges: EdgeMaps
    total: torch.Tensor


def qabf_sources(x: torch.Tensor) -> QabfSources:
    """Edge maps and total edge strength of the sources stacked on dim 1 (B, C, H, W), computed once per pair."""
    edges = edge_maps(x)
    return QabfSources(edges, _sum64(edges.strength, (1, 2, 3)))


def _edge_preservation(g_x: torch.Tensor, a_x: torch.Tensor, g_f: torch.Tensor, a_f: torch.Tensor) -> torch.Tensor:
    """Σ Q^{XF} g_X per image and source (B, C) over one strip of rows."""
    ratio = torch.where(g_x == g_f, g_f, torch.minimum(g_x, g_f) / torch.maximum(g_x, g_f))
    q_g = torch.sigmoid(ratio.sub_(_DG).mul_(-_KG))
    orient = torch.abs(a_x - a_f).mul_(-1 / (math.pi / 2)).add_(1 - _DA)
    q_a = torch.sigmoid(orient.mul_(-_KA))
    return _sum64(q_g.mul_(q_a).mul_(g_x), (2, 3))


def qabf_score(f: torch.Tensor, src: QabfSources) -> torch.Tensor:
    """Qabf = Σ (Q^{AF} g_A + Q^{BF} g_B) / Σ (g_A + g_B) (Xydeas & Petrović 2000).

    ``Q^{XF} = Q_g · Q_α`` per pixel: ``G = min(g_X, g_F) / max(g_X, g_F)``, except — as every
    MATLAB copy does — ``G = g_F`` where ``g_X = g_F`` (so the result depends on the image scale);
    ``A = 1 - |α_X - α_F| / (π/2)``; ``Q_g = Tg / (1 + e^{kg(G - Dg)})``, ``Q_α = Ta / (1 + e^{ka(A - Da)})``.
    """
    g, a = src.edges.strength, src.edges.angle
    total = torch.zeros(g.shape[:2], dtype=torch.float64, device=g.device)
    for r, fe in _edge_strips(f.unsqueeze(1)):
        total += _edge_preservation(g[:, :, r], a[:, :, r], fe.strength, fe.angle)
    return _TG * _TA * total.sum(dim=1) / src.total


def qabf(f: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Qabf of fused ``f`` with sources ``a``, ``b`` (B, H, W); see :func:`qabf_score`.

    Inputs' scale matters: the MATLAB code's reference values are those of 0..255 images, CDDFuse
    passes 0..255 too (docs/metrics.md).
    """
    return qabf_score(f, qabf_sources(torch.stack([a, b], dim=1)))
