"""The contextual contrastive loss as the authors' code computes it (``loss.compat: official``).

The authors' objective (github.com/bociic/OCCO: ``models/train.py``'s loss block, ``models/P_loss.py`` and
the contextual-loss package it bundles) differs from occo's sound form in the steps below, each one
function here; docs/fidelity.md lists them with their switch. Everything runs in float32 with autocast
off, in the authors' evaluation order: the objective is ill-conditioned in float32 (masked images
share large black areas, whose feature distances are rounding noise divided by ``min + 1e-5``), so
a log-domain softmax or another expansion of the squared distances moves some terms by ~1e-3.

* d1 ``call_centred_cosine_distance``: Eq. 9's μ is the mean of the target features over every sample
  of one call (the n anchors' group, or one negative group) and every position, not per sample.
* d2 ``transposed_squared_l2_distance``: the squared-L2 matrix that is mixed into Eq. 12 has its rows
  over the *target* points, transposed against the cosine matrix.
* d3 ``positive_first``: the relu5_4 numerator is CX(positive, anchor) (occo.losses.objective).
* d4 ``batch_mean_ratio``: one ratio of batch means per layer, no ε and no clamp.
* d7 ``F.normalize``'s own ε, 1e-12.
* d8 nothing is dropped: an empty region is a black image (occo.losses.objective).
* d9 no random subset of positions: full P×P matrices.

The pixel-loss differences (d5 SSIM and d6 Sobel, both zero-padded) are in ``occo.losses.pixel``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from occo.losses.contextual import EPS

NORMALIZE_EPS = 1e-12
"""``F.normalize``'s default ε, which the authors' cosine distance keeps (d7)."""
MIN_SIZE = 16
"""Smallest image side of the official objective, as of the authors' code (below it their VGG19's fourth
max-pool has nothing to pool): relu5_4 (1/16) then has one point along that side; with one point in all,
every relu5_4 similarity is 1 and that layer's ratio the constant 1/4."""


def _vectors(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) feature maps → (B, C, P) vectors, P = H·W."""
    return x.reshape(x.shape[0], x.shape[1], -1)


def call_mean(y: torch.Tensor, call_size: int) -> torch.Tensor:
    """The channel mean of ``y`` (B, C, P) over each block of ``call_size`` samples and all their positions,
    broadcast back to (B, C, 1): the μ of one call of the authors' loss."""
    b, c, p = y.shape
    mu = y.reshape(b // call_size, call_size, c, p).mean(dim=(1, 3), keepdim=True)
    return mu.expand(-1, call_size, -1, -1).reshape(b, c, 1)


def call_centred_cosine_distance(x: torch.Tensor, y: torch.Tensor, call_size: int) -> torch.Tensor:
    """Eq. 9 as the authors' code computes it (d1, d7): ``S_ij = 1 - <x̂_i, ŷ_j>``, x̂ = normalize(x - μ),
    ŷ = normalize(y - μ), μ the mean of ``y`` over the ``call_size`` samples of the call and their positions
    (``call_mean``), normalize with ε = 1e-12.

    x, y: (B, C, H, W) maps, B a multiple of ``call_size`` → (B, P_x, P_y), rows over the points of x.
    """
    xv, yv = _vectors(x), _vectors(y)
    mu = call_mean(yv, call_size)
    xn = F.normalize(xv - mu, p=2, dim=1, eps=NORMALIZE_EPS)
    yn = F.normalize(yv - mu, p=2, dim=1, eps=NORMALIZE_EPS)
    return 1 - torch.bmm(xn.transpose(1, 2), yn)


def transposed_squared_l2_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The squared feature distances of Eq. 12's L2 part as the authors' code orients them (d2):
    ``D[b, i, j] = |y_i - x_j|²``, rows over the points of **y**, clamped at 0.

    Expanded as ``|y|² - 2<y, x> + |x|²`` in that order (another order moves the result at the 1e-4 level).
    x, y: (B, C, H, W) → (B, P_y, P_x).
    """
    xv, yv = _vectors(x), _vectors(y)
    x_sq = (xv**2).sum(dim=1, keepdim=True)  # (B, 1, P_x)
    y_sq = (yv**2).sum(dim=1, keepdim=True)  # (B, 1, P_y)
    inner = torch.bmm(yv.transpose(1, 2), xv)  # (B, P_y, P_x)
    rows_x = y_sq - 2 * inner.transpose(1, 2) + x_sq.transpose(1, 2)  # (B, P_x, P_y)
    return rows_x.transpose(1, 2).clamp(min=0.0)


def contextual_affinity(d: torch.Tensor, band_width: float) -> torch.Tensor:
    """Eq. 10 with Mechrez et al.'s relative distance, in the linear domain as the authors' code:
    ``w = exp((1 - d / (min_j d + ε)) / h)``, ``CX = w / Σ_j w`` over the last axis.

    No overflow: ``d / (min + ε) ≥ 0``; the row minimum gives ``w ≥ exp(0)``, so no row sums to 0.
    """
    w = torch.exp((1 - d / (d.amin(dim=-1, keepdim=True) + EPS)) / band_width)
    return w / w.sum(dim=-1, keepdim=True)


def bilateral_contextual_loss(
    x: torch.Tensor, y: torch.Tensor, *, omega3: float, call_size: int, band_width: float = 1.0
) -> torch.Tensor:
    """Eq. 9-12 as the authors' ``contextual_bilateral_loss`` computes them, per sample (B,):
    ``-log(mean_i max_j [(1 - ω3) CX^cos_ij + ω3 CX^L2_ij] + ε)``.

    CX^cos from ``call_centred_cosine_distance`` (rows over x), CX^L2 from
    ``transposed_squared_l2_distance`` (rows over y), mixed elementwise as they come (d2), bandwidth 1;
    ω3 enters where their module passes its band width (0.5). The authors' value of a call is the mean
    of these over its samples.
    """
    cx_l2 = contextual_affinity(transposed_squared_l2_distance(x, y), band_width)
    cx_cos = contextual_affinity(call_centred_cosine_distance(x, y, call_size), band_width)
    mixed = (1.0 - omega3) * cx_cos + omega3 * cx_l2
    s = mixed.amax(dim=2, keepdim=True).mean(dim=1).squeeze(1)
    return -torch.log(s + EPS)


def cosine_contextual_loss(
    x: torch.Tensor, y: torch.Tensor, *, call_size: int, band_width: float = 0.5
) -> torch.Tensor:
    """The contextual loss of Mechrez et al. as the authors' package computes it (its ``ContextualLoss``,
    the commented-out alternative of ``ContrastiveLoss_multiNegative``), per sample (B,):
    ``-log(mean_j max_i CX^cos_ij + ε)``, bandwidth 0.5, the maximum over the points of x, the mean over
    those of y; the cosine distance centred per call (d1, d7)."""
    cx = contextual_affinity(call_centred_cosine_distance(x, y, call_size), band_width)
    s = cx.amax(dim=1).mean(dim=1)
    return -torch.log(s + EPS)


OFFICIAL_CX: dict[str, Callable[..., torch.Tensor]] = {
    "bounded": bilateral_contextual_loss,
    "mechrez": cosine_contextual_loss,
}
"""``loss.cx_variant`` → the authors' form of it (``literal`` has none: their code never computes Eq. 12's e)."""


class OfficialContextualLoss(nn.Module):
    """The authors' contextual value per sample, ``forward(x, y, call_size)``: (B, C, H, W) maps → (B,).

    ``call_size``: how many consecutive samples form one call of their loss (the centring of d1); every
    position is used (d9). Float32, autocast off, whatever the caller's precision.
    """

    def __init__(self, variant: str, *, omega3: float) -> None:
        super().__init__()
        if variant not in OFFICIAL_CX:
            raise ValueError(
                f"loss.compat official has no form of loss.cx_variant {variant!r}: the authors' code has "
                f"{', '.join(OFFICIAL_CX)}"
            )
        self.variant = variant
        self._fn = OFFICIAL_CX[variant] if variant == "mechrez" else partial(OFFICIAL_CX[variant], omega3=omega3)

    def forward(self, x: torch.Tensor, y: torch.Tensor, call_size: int | None = None) -> torch.Tensor:
        if x.shape != y.shape:
            raise ValueError(f"feature maps differ in size: {tuple(x.shape)} vs {tuple(y.shape)}")
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self._fn(x.float(), y.float(), call_size=call_size or x.shape[0])

    def extra_repr(self) -> str:
        return f"variant={self.variant}, official"


def left_to_right_sum(values: Sequence[torch.Tensor]) -> torch.Tensor:
    """``v0 + v1 + …`` in that order (the authors' ``c(o, n1) + c(o, n2) + …``)."""
    total = values[0]
    for v in values[1:]:
        total = total + v
    return total


def batch_mean_ratio(d_pos: torch.Tensor, d_neg: torch.Tensor, weights: Sequence[float]) -> torch.Tensor:
    """Eq. 6-8 with Eq. 13-14 as the authors' code forms them (d4): per layer l,
    ``λ_l · mean_a D_l(A_a, P_a) / Σ_k mean_a D_l(A_a, N_ka)``, summed over the layers; one ratio of batch
    means, no ε, no clamp (a denominator near 0 makes its gradient large: their objective).

    d_pos (L, n) and d_neg (L, G, n) per-sample distances, weights λ (L numbers) → a scalar.
    """
    ratios = [w * (pos.mean() / left_to_right_sum(list(neg.mean(dim=1)))) for w, pos, neg in zip(weights, d_pos, d_neg)]
    return left_to_right_sum(ratios)
