"""The fusion metric suite and its named variants (which public code each one reproduces).

A variant fixes how a colour image becomes grey and how each metric is scaled and normalised;
``docs/metrics.md`` lists every difference. Register a new variant by adding to ``VARIANTS``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from occo.data.io import rgb_to_gray_matlab, rgb_to_gray_opencv, to_uint8
from occo.metrics.gradient import average_gradient, qabf, spatial_frequency
from occo.metrics.information import entropy, mutual_information
from occo.metrics.statistics import correlation_coefficient, psnr, scd, standard_deviation
from occo.metrics.structural import ssim_sum, vif

# Column order of the paper's Tables 1–2 (EN, SF, AG, CC) followed by the wider set.
METRICS: tuple[str, ...] = ("EN", "SF", "AG", "CC", "SD", "MI", "VIF", "Qabf", "SSIM", "SCD", "PSNR")

MetricFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]


@dataclass(frozen=True)
class Variant:
    """One metric convention: grey conversion of colour inputs and the batched suite."""

    name: str
    source: str
    grey: Callable[[np.ndarray], np.ndarray]
    compute: MetricFn


def _matlab(f: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
    """Linfeng-Tang/Evaluation-for-Image-Fusion ``analysis_Reference.m`` (easy = 1), current code.

    ``f, a, b``: (B, H, W) grey levels 0..255. CC, SCD and PSNR on ``im2double`` images in [0, 1] as
    that code passes them; the rest on 0..255 values (Qabf too: the current code reproduces the
    reference values only on 0..255, the older copies passed [0, 1], see docs/metrics.md).
    """
    nf, na, nb = f / 255, a / 255, b / 255
    return {
        "EN": entropy(f),
        "SF": spatial_frequency(f),
        "AG": average_gradient(f, normalise="matlab"),
        "CC": correlation_coefficient(nf, na, nb),
        "SD": standard_deviation(f),
        "MI": mutual_information(f, a, b, base=2.0, merge_top=True),
        "VIF": vif(f, a, b),
        "Qabf": qabf(f, a, b),
        "SSIM": ssim_sum(nf, na, nb, window="gaussian", data_range=1.0),
        "SCD": scd(nf, na, nb),
        "PSNR": psnr(nf, na, nb, peak=255.0),
    }


def _cddfuse(f: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
    """MMIF-CDDFuse ``utils/Evaluator.py``: everything on 0..255 values, MI in nats, AG a plain mean."""
    return {
        "EN": entropy(f),
        "SF": spatial_frequency(f),
        "AG": average_gradient(f, normalise="mean"),
        "CC": correlation_coefficient(f, a, b),
        "SD": standard_deviation(f),
        "MI": mutual_information(f, a, b, base=math.e, merge_top=False),
        "VIF": vif(f, a, b, nan_as_one=True),
        "Qabf": qabf(f, a, b),
        "SSIM": ssim_sum(f, a, b, window="uniform", data_range=255.0),
        "SCD": scd(f, a, b),
        "PSNR": psnr(f, a, b, peak=f.flatten(1).amax(dim=1)),
    }


VARIANTS: dict[str, Variant] = {
    "matlab": Variant(
        "matlab", "Linfeng-Tang/Evaluation-for-Image-Fusion Evaluation/*.m", rgb_to_gray_matlab, _matlab
    ),
    "cddfuse": Variant("cddfuse", "MMIF-CDDFuse utils/Evaluator.py", rgb_to_gray_opencv, _cddfuse),
}


def get_variant(name: str) -> Variant:
    """The registered variant ``name``, or a ValueError listing the known ones."""
    try:
        return VARIANTS[name]
    except KeyError:
        raise ValueError(f"unknown metric variant {name!r}; known: {', '.join(VARIANTS)}") from None


def grey_levels(arr: np.ndarray, variant: str = "matlab") -> np.ndarray:
    """Grey levels 0..255 (float64, H×W) of an 8/16-bit grey or RGB array as ``variant`` reads it.

    16-bit images are first reduced to 8 bits (``round(x / 257)``), as the metric code expects uint8.
    """
    return np.asarray(get_variant(variant).grey(to_uint8(arr)), dtype=np.float64)


def compute_metrics(
    f: torch.Tensor, a: torch.Tensor, b: torch.Tensor, variant: str = "matlab"
) -> dict[str, torch.Tensor]:
    """All metrics of :data:`METRICS` for a batch: ``f`` fused, ``a`` infrared, ``b`` visible.

    Inputs are (B, H, W) grey levels 0..255 of one size; computed in float64 on their device.
    Returns ``{name: (B,) tensor}``.
    """
    if not (f.shape == a.shape == b.shape) or f.dim() != 3:
        raise ValueError(f"metrics need three (B, H, W) batches of one shape, got {f.shape}, {a.shape}, {b.shape}")
    f, a, b = (x.to(torch.float64) for x in (f, a, b))
    return get_variant(variant).compute(f, a, b)
