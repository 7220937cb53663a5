"""The two forms of the contrastive part of the training objective, ``loss.compat``: occo's sound form
(``fixed``) and the authors' code's (``official``). Each field is one difference of docs/fidelity.md;
the pixel part's (d5, d6) are ``occo.losses.pixel.SSIM_FORMS`` and ``SOBEL_FORMS``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from occo.losses.contextual import ContextualLoss
from occo.losses.official import MIN_SIZE, OfficialContextualLoss
from occo.masks.decompose import decompose_masks, mask_products


@dataclass(frozen=True)
class Objective:
    """How the contrastive terms are computed.

    ``regions``: §3.2 from the two masks (binarised, or their products as given);
    ``contextual``: ``(cx_variant, *, omega3) → module`` whose ``forward(x, y, call_size)`` gives one
    contextual value per sample (d1 centring, d2 L2 orientation, d7 ε, d9 position sampling, float order);
    ``positive_first``: layers whose numerator is CX(positive, anchor) rather than CX(anchor, positive) (d3);
    ``batch_means``: one ratio of batch means per layer, no ε, no clamp (d4), else the mean of per-anchor
    ratios with ε and distances clamped at 0;
    ``keep_empty``: anchors and negatives with an empty region stay in (black images, d8), else they are
    left out and a term with no anchor is skipped;
    ``min_size``: smallest image side accepted (None: what VGG19 accepts).
    """

    regions: Callable[..., dict[str, torch.Tensor]]
    contextual: Callable[..., nn.Module]
    positive_first: frozenset[str]
    batch_means: bool
    keep_empty: bool
    min_size: int | None


OBJECTIVES: dict[str, Objective] = {
    "fixed": Objective(
        regions=decompose_masks,
        contextual=ContextualLoss,
        positive_first=frozenset(),
        batch_means=False,
        keep_empty=False,
        min_size=None,
    ),
    "official": Objective(
        regions=mask_products,
        contextual=OfficialContextualLoss,
        positive_first=frozenset({"relu5_4"}),
        batch_means=True,
        keep_empty=True,
        min_size=MIN_SIZE,
    ),
}
"""``loss.compat`` → the form of the contrastive terms."""


def get_objective(compat: str) -> Objective:
    """The objective of ``loss.compat``."""
    if compat not in OBJECTIVES:
        raise ValueError(f"unknown loss.compat {compat!r}; choose from {', '.join(OBJECTIVES)}")
    return OBJECTIVES[compat]
