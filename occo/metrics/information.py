"""Histogram metrics: entropy (EN) and mutual information (MI), batched over images.

Inputs are (B, H, W) tensors holding integer grey levels 0..255 (uint8, or any dtype holding such
integers). Histograms of a whole batch come from one ``bincount`` with a per-image offset; the
joint histograms of the fused image with both sources come from one more (see :func:`joint_index`),
and their marginals give every 256-bin histogram the metrics need.
"""

from __future__ import annotations

import math

import torch

LEVELS = 256


def to_levels(x: torch.Tensor) -> torch.Tensor:
    """``x`` as uint8 grey levels; a ValueError unless every value is an integer in 0..255."""
    if x.dtype == torch.uint8:
        return x
    ok = (x >= 0) & (x < LEVELS)
    if x.is_floating_point():
        ok &= x == x.round()
    if x.numel() and not bool(ok.all()):
        raise ValueError("histogram metrics need integer grey levels in 0..255")
    return x.to(torch.uint8)


def _offsets(shape: tuple[int, ...], bins: int, device: torch.device) -> torch.Tensor:
    """Bin offsets ``bins · k`` for the k-th image of a (…, N) index tensor, shaped to broadcast."""
    count = math.prod(shape[:-1])
    return (torch.arange(count, device=device, dtype=torch.int32) * bins).view(*shape[:-1], 1)


def histogram(x: torch.Tensor) -> torch.Tensor:
    """Per-image 256-bin histogram counts, (B, H, W) → (B, 256), float64."""
    idx = to_levels(x).flatten(1).to(torch.int32)
    idx = idx + _offsets(idx.shape, LEVELS, idx.device)
    return torch.bincount(idx.flatten(), minlength=idx.shape[0] * LEVELS).view(-1, LEVELS).double()


def joint_index(sources: torch.Tensor) -> torch.Tensor:
    """Joint-histogram bin index ``256 · level`` of source images (B, C, H, W) → int32 (B, C, H·W).

    Each plane gets its own 256² bins; adding a fused image's levels gives :func:`joint_counts`'
    input. It depends on the sources only, so it is computed once per pair.
    """
    idx = to_levels(sources).flatten(2).to(torch.int32) * LEVELS
    return idx + _offsets(idx.shape, LEVELS * LEVELS, idx.device)


def joint_counts(index: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Joint histograms (B, C, 256, 256) of each source plane of ``index`` (rows) with ``f`` (B, H, W) (columns)."""
    flat = index + to_levels(f).flatten(1).unsqueeze(1)
    return (
        torch.bincount(flat.flatten(), minlength=index.shape[0] * index.shape[1] * LEVELS * LEVELS)
        .view(*index.shape[:2], LEVELS, LEVELS)
        .double()
    )


def joint_histogram(x: torch.Tensor, y: torch.Tensor, *, merge_top: bool) -> torch.Tensor:
    """Per-image joint histogram counts (B, 256, 256) of levels of ``x`` (rows) and ``y`` (columns).

    ``merge_top=True`` reproduces MATLAB ``Hab.m``: it indexes ``counter(x+1, y+1)`` in uint8
    arithmetic, where ``255 + 1`` saturates to 255, so levels 254 and 255 share one bin on both axes.
    """
    counts = joint_counts(joint_index(x.unsqueeze(1)), y)[:, 0]
    return merge_top_levels(counts) if merge_top else counts


def merge_top_levels(joint: torch.Tensor) -> torch.Tensor:
    """Joint counts (…, 256, 256) with levels 254 and 255 in one bin (254) on both axes (MATLAB ``Hab.m``)."""
    out = joint.clone()
    out[..., LEVELS - 2, :] += out[..., LEVELS - 1, :]
    out[..., LEVELS - 1, :] = 0
    out[..., :, LEVELS - 2] += out[..., :, LEVELS - 1]
    out[..., :, LEVELS - 1] = 0
    return out


def shannon_entropy(counts: torch.Tensor, *, base: float = 2.0) -> torch.Tensor:
    """``H = -Σ p log p`` over the non-empty bins of the last dim of ``counts`` (…, K) → (…)."""
    p = counts / counts.sum(dim=-1, keepdim=True)
    return -torch.special.xlogy(p, p).sum(dim=-1) / math.log(base)


def entropy(f: torch.Tensor) -> torch.Tensor:
    """EN: Shannon entropy of the 256-bin grey histogram of the fused image, ``-Σ p_l log2 p_l``."""
    return shannon_entropy(histogram(f))


def mutual_information_from_joints(joints: torch.Tensor, *, base: float = 2.0, merge_top: bool = True) -> torch.Tensor:
    """MI = Σ_X MI(X, F) from joint counts (B, C, 256, 256) of sources X (rows) with F (columns).

    ``MI(X, F) = H(X) + H(F) - H(X, F)``; the marginal entropies use the exact 256-bin marginals of
    the joint counts, the joint entropy the merged counts when ``merge_top`` (MATLAB ``Hab.m``).
    """
    h_src = shannon_entropy(joints.sum(dim=-1), base=base)
    h_f = shannon_entropy(joints[:, :1].sum(dim=-2), base=base)
    pairs = merge_top_levels(joints) if merge_top else joints
    h_joint = shannon_entropy(pairs.flatten(-2), base=base)
    return (h_src + h_f - h_joint).sum(dim=1)


def mutual_information(
    f: torch.Tensor, a: torch.Tensor, b: torch.Tensor, *, base: float = 2.0, merge_top: bool = True
) -> torch.Tensor:
    """MI = MI(A, F) + MI(B, F) with ``MI(X, F) = H(X) + H(F) - H(X, F)``.

    Defaults follow the MATLAB code (log2, joint histogram with levels 254/255 merged, marginal
    histograms exact). ``base=e, merge_top=False`` is scikit-learn's ``mutual_info_score`` on the
    grey levels (nats), as the CDDFuse evaluator computes it.
    """
    joints = joint_counts(joint_index(torch.stack([a, b], dim=1)), f)
    return mutual_information_from_joints(joints, base=base, merge_top=merge_top)
