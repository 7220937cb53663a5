"""Histogram metrics: entropy (EN) and mutual information (MI), batched over images.

Inputs are (B, H, W) tensors holding integer grey levels 0..255 (any float or int dtype).
Histograms of a whole batch come from one ``bincount`` with a per-image offset.
"""

from __future__ import annotations

import math

import torch

LEVELS = 256


def _levels(x: torch.Tensor) -> torch.Tensor:
    """Integer grey levels of ``x`` as int64, checked to lie in 0..255."""
    idx = x.round().to(torch.int64).flatten(1)
    if idx.numel() and (idx.min() < 0 or idx.max() >= LEVELS):
        raise ValueError("histogram metrics need grey levels in 0..255")
    return idx


def histogram(x: torch.Tensor) -> torch.Tensor:
    """Per-image 256-bin histogram counts, (B, H, W) → (B, 256), float64."""
    idx = _levels(x)
    b = idx.shape[0]
    offset = torch.arange(b, device=idx.device).unsqueeze(1) * LEVELS
    return torch.bincount((idx + offset).flatten(), minlength=b * LEVELS).view(b, LEVELS).double()


def joint_histogram(x: torch.Tensor, y: torch.Tensor, *, merge_top: bool) -> torch.Tensor:
    """Per-image joint histogram counts (B, 256, 256) of levels of ``x`` (rows) and ``y`` (columns).

    ``merge_top=True`` reproduces MATLAB ``Hab.m``: it indexes ``counter(x+1, y+1)`` in uint8
    arithmetic, where ``255 + 1`` saturates to 255, so levels 254 and 255 share one bin on both axes.
    """
    ix, iy = _levels(x), _levels(y)
    if merge_top:
        ix, iy = ix.clamp(max=LEVELS - 2), iy.clamp(max=LEVELS - 2)
    b = ix.shape[0]
    offset = torch.arange(b, device=ix.device).unsqueeze(1) * LEVELS * LEVELS
    flat = (offset + ix * LEVELS + iy).flatten()
    return torch.bincount(flat, minlength=b * LEVELS * LEVELS).view(b, LEVELS, LEVELS).double()


def shannon_entropy(counts: torch.Tensor, *, base: float = 2.0) -> torch.Tensor:
    """``H = -Σ p log p`` over the non-empty bins of each row of ``counts`` (B, ...) → (B,)."""
    p = counts.flatten(1)
    p = p / p.sum(dim=1, keepdim=True)
    terms = torch.where(p > 0, p * torch.log(p.clamp_min(torch.finfo(p.dtype).tiny)), torch.zeros_like(p))
    return -terms.sum(dim=1) / math.log(base)


def entropy(f: torch.Tensor) -> torch.Tensor:
    """EN: Shannon entropy of the 256-bin grey histogram of the fused image, ``-Σ p_l log2 p_l``."""
    return shannon_entropy(histogram(f))


def mutual_information(
    f: torch.Tensor, a: torch.Tensor, b: torch.Tensor, *, base: float = 2.0, merge_top: bool = True
) -> torch.Tensor:
    """MI = MI(A, F) + MI(B, F) with ``MI(X, F) = H(X) + H(F) - H(X, F)``.

    Defaults follow the MATLAB code (log2, joint histogram with levels 254/255 merged, marginal
    histograms exact). ``base=e, merge_top=False`` is scikit-learn's ``mutual_info_score`` on the
    grey levels (nats), as the CDDFuse evaluator computes it.
    """
    h_f = shannon_entropy(histogram(f), base=base)
    total = torch.zeros_like(h_f)
    for src in (a, b):
        h_src = shannon_entropy(histogram(src), base=base)
        h_joint = shannon_entropy(joint_histogram(src, f, merge_top=merge_top), base=base)
        total = total + h_src + h_f - h_joint
    return total
