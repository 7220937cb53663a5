"""Contextual similarity between two sets of feature vectors (Eq. 9-12) and its variants.

Point sets are (B, N, C) tensors: N feature vectors x_i of the anchor (the fused image) and M
vectors y_j of the target (a positive or a negative). Every function here runs in float32 with
autocast disabled, whatever the caller's precision, and turns affinities into probabilities with a
log-softmax; ε sits in every denominator.

The paper (§3.3): Eq. 9 the centred cosine distance S_ij, Eq. 10 ``s_i = max_k softmax_k(1 - S_ik)``,
Eq. 11 ``s = mean_i s_i``, Eq. 12 ``CS = -log(s + ω3·e)`` with e the Euclidean distance of the two
maps. Every variant here normalises S by its row minimum before the softmax (the relative distance
of Mechrez et al., which the public code's contextual-loss package applies; Eq. 10 has none).

Variants (``loss.cx_variant``), each giving a per-sample loss ``-log(similarity)`` (``loss.compat: official``
computes ``bounded`` and ``mechrez`` as the authors' code does instead: ``occo.losses.official``):

* ``bounded`` (default): ``-log(mean_i max_j [(1-ω3) CX^cos_ij + ω3 CX^L2_ij])``, CX^L2 the same
  affinity computed from squared feature distances, bandwidth 1. Both parts are probabilities, so
  the similarity stays in [0, 1]. This is the public code's mixing: its bundled
  ``OCCO/contextual_loss/functional.py::contextual_bilateral_loss`` mixes the cosine affinity with one
  of squared *feature* distances (the authors replaced the package's pixel-position grid), with w = 0.5
  (the module passes its band width into the weight slot) and bandwidth 1; we orient its L2 matrix
  like the cosine one, which the code transposes (docs/fidelity.md).
* ``literal``: Eq. 12 as printed, ``-log(s + ω3·e)`` with ``e = ‖φ1 - φ2‖₂`` over the whole feature maps
  (every position and channel), unbounded: e rewards moving *away* from the target and drives the value
  below zero once ω3·e > 1 - s (warned).
* ``mechrez``: the original contextual loss of Mechrez et al. (ECCV 2018): cosine only,
  ``CX = mean_j max_i CX_ij``, bandwidth 0.5.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

EPS = 1e-5
MAX_POINTS = 65 * 65
"""Point cap per feature map (Mechrez et al. sample 65×65 positions): above it, a random subset is used."""


def _fp32(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """Run ``fn`` with autocast off and its tensor arguments cast to float32."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        device = next(a for a in args if isinstance(a, torch.Tensor)).device.type
        with torch.autocast(device_type=device, enabled=False):
            args = [a.float() if isinstance(a, torch.Tensor) else a for a in args]
            return fn(*args, **kwargs)

    return wrapper


def feature_points(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) feature map → (B, H·W, C) point set."""
    return x.flatten(2).transpose(1, 2)


def cosine_distance(x: torch.Tensor, y: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Eq. 9: ``S_ij = 1 - <x_i - μ_y, y_j - μ_y> / (|x_i - μ_y| |y_j - μ_y|)``, μ_y the mean target vector.

    x (B, N, C), y (B, M, C) → (B, N, M). Norms below ε are replaced by ε. μ_y is taken per sample
    (the public code averages over the whole batch, which would make a sample's loss depend on
    the others in its call).
    """
    mu = y.mean(dim=1, keepdim=True)
    xn = F.normalize(x - mu, dim=-1, eps=eps)
    yn = F.normalize(y - mu, dim=-1, eps=eps)
    return 1.0 - xn @ yn.transpose(1, 2)


def squared_l2_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``d_ij = |x_i - y_j|²`` as (B, N, M), rows over the anchor like ``cosine_distance``.

    The pairwise counterpart of Eq. 9 that the ``bounded`` variant mixes in with ω3 (not an equation
    of the paper, whose Eq. 12 compares whole maps).
    """
    d = (x * x).sum(-1, keepdim=True) + (y * y).sum(-1).unsqueeze(1) - 2.0 * (x @ y.transpose(1, 2))
    return d.clamp_min(0.0)


def relative_distance(d: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Mechrez et al. 2018, Eq. 2: ``d̃_ij = d_ij / (min_k d_ik + ε)`` (the paper's Eq. 10 has no such step)."""
    return d / (d.amin(dim=-1, keepdim=True) + eps)


def log_contextual_affinity(d: torch.Tensor, band_width: float, eps: float = EPS) -> torch.Tensor:
    """Eq. 10's normalisation on relative distances: ``log CX_ij = log softmax_j((1 - d̃_ij) / h)``.

    Each anchor point's affinities sum to 1; Eq. 10 itself is ``softmax_j(1 - S_ij)`` (h = 1, no d̃).
    """
    return torch.log_softmax((1.0 - relative_distance(d, eps)) / band_width, dim=-1)


def _log_mean_max(log_cx: torch.Tensor, max_dim: int) -> torch.Tensor:
    """``log(mean_other max_{max_dim} CX)`` per sample, from log CX (B, N, M): Eq. 10's max and Eq. 11's
    mean when ``max_dim`` = 2 (max over target points, mean over anchor points)."""
    best = log_cx.amax(dim=max_dim)
    return torch.logsumexp(best, dim=-1) - math.log(best.shape[-1])


def _neg_log(log_s: torch.Tensor, eps: float) -> torch.Tensor:
    """``-log(s + ε)`` from ``log s``, without leaving the log domain."""
    return -torch.logaddexp(log_s, torch.full_like(log_s, math.log(eps)))


@_fp32
def bounded_contextual_loss(
    x: torch.Tensor, y: torch.Tensor, *, omega3: float, band_width: float = 1.0, eps: float = EPS
) -> torch.Tensor:
    """Eq. 12 (bounded): ``-log(mean_i max_j [(1-ω3) CX^cos_ij + ω3 CX^L2_ij] + ε)`` per sample (B,).

    CX^cos and CX^L2 are ``log_contextual_affinity`` of ``cosine_distance`` (Eq. 9) and of
    ``squared_l2_distance``. ω3 = 0 is cosine only (Model-5).
    Identical point sets give the minimum, ``-log(1 + ε) ≈ 0``.
    """
    if not 0.0 <= omega3 <= 1.0:
        raise ValueError(f"omega3 must lie in [0, 1], got {omega3}")
    parts = []
    if omega3 < 1.0:
        parts.append(log_contextual_affinity(cosine_distance(x, y, eps), band_width, eps) + math.log1p(-omega3))
    if omega3 > 0.0:
        parts.append(log_contextual_affinity(squared_l2_distance(x, y), band_width, eps) + math.log(omega3))
    log_cx = parts[0] if len(parts) == 1 else torch.logaddexp(parts[0], parts[1])
    return _neg_log(_log_mean_max(log_cx, max_dim=2), eps)


def l2_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Eq. 14 (and Eq. 12's e): ``e(φ1, φ2) = ‖φ1 - φ2‖₂`` per sample, over every feature value.

    (B, ...) → (B,), in float32; its gradient at 0 is 0. Background term and Model-1/3 under
    ``distance_form: paper``, and the ``literal`` variant's e.
    """
    return torch.linalg.vector_norm((a.float() - b.float()).flatten(1), dim=1)


@_fp32
def literal_contextual_loss(
    x: torch.Tensor, y: torch.Tensor, *, omega3: float, e: torch.Tensor, band_width: float = 1.0, eps: float = EPS
) -> torch.Tensor:
    """Eq. 12 as printed: ``CS = -log(s + ω3·e)`` per sample (B,).

    s = ``mean_i max_j CX^cos_ij`` (Eq. 9-11, from the point sets x, y) and ``e = ‖φ1 - φ2‖₂`` (B,), the
    Euclidean distance of the whole feature maps (``l2_distance``, computed before any sampling of
    positions). Unbounded: moving away from the target raises e and lowers CS, below 0 once ω3·e > 1 - s;
    identical maps give 0.
    """
    log_s = _log_mean_max(log_contextual_affinity(cosine_distance(x, y, eps), band_width, eps), max_dim=2)
    return -torch.log(log_s.exp() + omega3 * e)


@_fp32
def mechrez_contextual_loss(
    x: torch.Tensor, y: torch.Tensor, *, band_width: float = 0.5, eps: float = EPS
) -> torch.Tensor:
    """Mechrez et al. 2018, Eq. 1-5: ``-log(mean_j max_i CX^cos_ij + ε)`` per sample (B,).

    CX_ij normalised over the target points j for each anchor point i; the maximum runs over the
    anchor points and the mean over the target points.
    """
    log_cx = log_contextual_affinity(cosine_distance(x, y, eps), band_width, eps)
    return _neg_log(_log_mean_max(log_cx, max_dim=1), eps)


@dataclass(frozen=True)
class CXVariant:
    """A contextual-similarity variant: its loss function, bandwidth, whether it mixes with ω3, and whether it
    takes Eq. 12's e of the whole maps (``e=``)."""

    fn: Callable[..., torch.Tensor]
    band_width: float
    uses_omega3: bool
    whole_map_distance: bool = False


CX_VARIANTS: dict[str, CXVariant] = {
    "bounded": CXVariant(bounded_contextual_loss, 1.0, True),
    "literal": CXVariant(literal_contextual_loss, 1.0, True, whole_map_distance=True),
    "mechrez": CXVariant(mechrez_contextual_loss, 0.5, False),
}


def sample_points(x: torch.Tensor, y: torch.Tensor, max_points: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Point sets of two same-size feature maps, the same random subset of positions when H·W > max_points."""
    if x.shape[2:] != y.shape[2:]:
        raise ValueError(f"feature maps differ in size: {tuple(x.shape)} vs {tuple(y.shape)}")
    xp, yp = feature_points(x), feature_points(y)
    n = xp.shape[1]
    if max_points is not None and n > max_points:
        idx = torch.randperm(n, device=x.device)[:max_points]
        xp, yp = xp[:, idx], yp[:, idx]
    return xp, yp


class ContextualLoss(nn.Module):
    """Per-sample contextual loss ``-log CX(x, y)`` between feature maps, variant chosen by name.

    Args:
        variant: ``bounded`` | ``literal`` | ``mechrez`` (param ``loss.cx_variant``).
        omega3: cosine/L2 mixing weight (ignored by ``mechrez``, which has no L2 part).
        max_points: random subset of positions above this many per map (None: all).
        use_checkpoint: recompute the similarity matrices in backward instead of storing them.

    ``forward(x, y, call_size=None)``: (B, C, H, W) anchor and target features → (B,) float32 losses; each
    sample is centred on its own target (Eq. 9), so ``call_size`` (the authors' grouping of samples into
    calls, ``occo.losses.official``) changes nothing here.
    """

    def __init__(
        self,
        variant: str,
        *,
        omega3: float,
        max_points: int | None = MAX_POINTS,
        use_checkpoint: bool = True,
        eps: float = EPS,
    ) -> None:
        super().__init__()
        if variant not in CX_VARIANTS:
            raise ValueError(f"unknown loss.cx_variant {variant!r}; choose from {', '.join(CX_VARIANTS)}")
        spec = CX_VARIANTS[variant]
        kwargs: dict[str, float] = {"band_width": spec.band_width, "eps": eps}
        if spec.uses_omega3:
            kwargs["omega3"] = omega3
        if spec.whole_map_distance:
            warnings.warn(
                "loss.cx_variant=literal: -log(s + omega3*e) with e the unbounded Euclidean distance of the whole "
                "feature maps (Eq. 12 as printed) rewards moving away from the positive",
                UserWarning,
                stacklevel=2,
            )
        self.variant = variant
        self.max_points = max_points
        self.use_checkpoint = use_checkpoint
        self.whole_map_distance = spec.whole_map_distance
        self._fn = functools.partial(spec.fn, **kwargs)

    def forward(self, x: torch.Tensor, y: torch.Tensor, call_size: int | None = None) -> torch.Tensor:
        xp, yp = sample_points(x, y, self.max_points)
        kwargs = {"e": l2_distance(x, y)} if self.whole_map_distance else {}
        if self.use_checkpoint and torch.is_grad_enabled() and (xp.requires_grad or yp.requires_grad):
            return checkpoint(self._fn, xp, yp, use_reentrant=False, **kwargs)
        return self._fn(xp, yp, **kwargs)

    def extra_repr(self) -> str:
        return f"variant={self.variant}, max_points={self.max_points}"
