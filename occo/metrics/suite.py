"""The fusion metric suite and its named variants (which public code each one reproduces).

A variant fixes how a colour image becomes grey and how each metric is scaled and normalised;
``docs/metrics.md`` lists every difference. Register a new variant by adding to ``VARIANTS``.

Scoring is split in two so that a pair's sources are analysed once however many fused images are
scored against them: :func:`prepare_sources` computes every source-only term (histogram bins,
moments, Sobel maps, SSIM and VIF window statistics), :func:`score` adds each fused image.
:func:`compute_metrics` does both for one set of triples.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from occo.data.io import rgb_to_gray_matlab, rgb_to_gray_opencv, to_uint8
from occo.metrics.gradient import QabfSources, average_gradient, qabf_score, qabf_sources, spatial_frequency
from occo.metrics.information import (
    joint_counts,
    joint_index,
    mutual_information_from_joints,
    shannon_entropy,
    to_levels,
)
from occo.metrics.statistics import (
    Moments,
    correlation_coefficient,
    moments_from_joints,
    psnr,
    scd,
    stack_moments,
    standard_deviation,
)
from occo.metrics.structural import SsimSources, VifSources, ssim_score, ssim_sources, vif_score, vif_sources

# Column order of the paper's Tables 1–2 (EN, SF, AG, CC) followed by the wider set.
METRICS: tuple[str, ...] = ("EN", "SF", "AG", "CC", "SD", "MI", "VIF", "Qabf", "SSIM", "SCD", "PSNR")


@dataclass(frozen=True)
class Sources:
    """Source-only terms of a batch of pairs (infrared A, visible B), for one variant.

    Built by :func:`prepare_sources`; :func:`score` reuses it for every fused image of those pairs.
    """

    variant: str
    shape: tuple[int, ...]
    joint_index: torch.Tensor
    moments: Moments
    qabf: QabfSources
    ssim: SsimSources
    vif: VifSources


@dataclass(frozen=True)
class Variant:
    """One metric convention: grey conversion of colour inputs, SSIM window, and the suite."""

    name: str
    source: str
    grey: Callable[[np.ndarray], np.ndarray]
    ssim_window: str
    compute: Callable[[torch.Tensor, Sources], dict[str, torch.Tensor]]


@dataclass(frozen=True)
class _Fused:
    """What every metric reads of one fused batch: the image in float32 and float64, its joint
    counts with both sources and the moments of (F, A, B)."""

    f32: torch.Tensor
    f64: torch.Tensor
    joints: torch.Tensor
    moments: Moments


def _fused(f: torch.Tensor, src: Sources) -> _Fused:
    joints = joint_counts(src.joint_index, f)
    return _Fused(f.float(), f.double(), joints, moments_from_joints(joints, src.moments))


def _matlab(f: torch.Tensor, src: Sources) -> dict[str, torch.Tensor]:
    """Linfeng-Tang/Evaluation-for-Image-Fusion ``analysis_Reference.m`` (easy = 1), current code.

    ``f``: (B, H, W) uint8 grey levels. CC, SCD and PSNR as that code computes them on ``im2double``
    images in [0, 1] (CC and SCD do not depend on the scale; PSNR's MSE is divided by 255²); the
    rest on 0..255 values (Qabf too: the current code reproduces the reference values only on
    0..255, where other copies of it pass [0, 1], see docs/metrics.md). SSIM with MATLAB ``ssim``'s
    defaults, computed on 0..255 with L = 255 (the same value as on [0, 1] with L = 1).
    """
    x = _fused(f, src)
    return {
        "EN": shannon_entropy(x.joints[:, 0].sum(dim=1), base=2.0),
        "SF": spatial_frequency(x.f32),
        "AG": average_gradient(x.f32, normalise="matlab"),
        "CC": correlation_coefficient(x.moments),
        "SD": standard_deviation(x.moments),
        "MI": mutual_information_from_joints(x.joints, base=2.0, merge_top=True),
        "VIF": vif_score(x.f64, src.vif),
        "Qabf": qabf_score(x.f64, src.qabf),
        "SSIM": ssim_score(x.f64, src.ssim),
        "SCD": scd(x.moments),
        "PSNR": psnr(x.moments, peak=255.0, scale=255.0),
    }


def _cddfuse(f: torch.Tensor, src: Sources) -> dict[str, torch.Tensor]:
    """MMIF-CDDFuse ``utils/Evaluator.py``: everything on 0..255 values, MI in nats, AG a plain mean."""
    x = _fused(f, src)
    return {
        "EN": shannon_entropy(x.joints[:, 0].sum(dim=1), base=2.0),
        "SF": spatial_frequency(x.f32),
        "AG": average_gradient(x.f32, normalise="mean"),
        "CC": correlation_coefficient(x.moments),
        "SD": standard_deviation(x.moments),
        "MI": mutual_information_from_joints(x.joints, base=math.e, merge_top=False),
        "VIF": vif_score(x.f64, src.vif, nan_as_one=True),
        "Qabf": qabf_score(x.f64, src.qabf),
        "SSIM": ssim_score(x.f64, src.ssim),
        "SCD": scd(x.moments),
        "PSNR": psnr(x.moments, peak=f.flatten(1).amax(dim=1).double()),
    }


VARIANTS: dict[str, Variant] = {
    "matlab": Variant(
        "matlab", "Linfeng-Tang/Evaluation-for-Image-Fusion Evaluation/*.m", rgb_to_gray_matlab, "gaussian", _matlab
    ),
    "cddfuse": Variant("cddfuse", "MMIF-CDDFuse utils/Evaluator.py", rgb_to_gray_opencv, "uniform", _cddfuse),
}


def get_variant(name: str) -> Variant:
    """The registered variant ``name``, or a ValueError listing the known ones."""
    try:
        return VARIANTS[name]
    except KeyError:
        raise ValueError(f"unknown metric variant {name!r}; known: {', '.join(VARIANTS)}") from None


def grey_levels(arr: np.ndarray, variant: str = "matlab") -> np.ndarray:
    """Grey levels 0..255 (uint8, H×W) of an 8/16-bit grey or RGB array as ``variant`` reads it.

    16-bit images are first reduced to 8 bits (``round(x / 257)``), as the metric code expects uint8.
    """
    return np.asarray(get_variant(variant).grey(to_uint8(arr))).astype(np.uint8, copy=False)


def _check_shapes(*xs: torch.Tensor) -> None:
    if not all(x.shape == xs[0].shape for x in xs) or xs[0].dim() != 3:
        raise ValueError(
            f"metrics need (B, H, W) batches of one shape, got {', '.join(str(tuple(x.shape)) for x in xs)}"
        )


def prepare_sources(a: torch.Tensor, b: torch.Tensor, variant: str = "matlab") -> Sources:
    """Every source-only term of the metrics for infrared ``a`` and visible ``b`` (B, H, W) grey levels 0..255."""
    _check_shapes(a, b)
    spec = get_variant(variant)
    x8 = torch.stack([to_levels(a), to_levels(b)], dim=1)
    x64 = x8.double()
    return Sources(
        variant=spec.name,
        shape=tuple(a.shape),
        joint_index=joint_index(x8),
        moments=stack_moments(x64),
        qabf=qabf_sources(x64),
        ssim=ssim_sources(x64, window=spec.ssim_window, data_range=255.0),
        vif=vif_sources(x64),
    )


def score(f: torch.Tensor, sources: Sources) -> dict[str, torch.Tensor]:
    """All metrics of :data:`METRICS` of fused ``f`` (B, H, W) grey levels 0..255 against ``sources``.

    Returns ``{name: (B,) float64 tensor}``.
    """
    if tuple(f.shape) != sources.shape:
        raise ValueError(f"fused batch of shape {tuple(f.shape)} scored against sources of shape {sources.shape}")
    return get_variant(sources.variant).compute(to_levels(f), sources)


def compute_metrics(
    f: torch.Tensor, a: torch.Tensor, b: torch.Tensor, variant: str = "matlab"
) -> dict[str, torch.Tensor]:
    """All metrics of :data:`METRICS` for a batch: ``f`` fused, ``a`` infrared, ``b`` visible.

    Inputs are (B, H, W) integer grey levels 0..255 of one shape, any dtype, on one device.
    Returns ``{name: (B,) float64 tensor}``.
    """
    _check_shapes(f, a, b)
    return score(to_levels(f), prepare_sources(a, b, variant))
