"""Total training loss (Eq. 20): ``L = L_pixel + ω6 · L_ccl``, one module built once per run."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from occo.losses.contrastive import ContextualContrastiveLoss, MaskedIntensityLoss, get_feature_space
from occo.losses.pixel import PixelLoss


class NonFiniteLossError(FloatingPointError):
    """An input or a loss term holds NaN or ±inf; the message names which."""


def total_loss(l_pixel: torch.Tensor, l_contrast: torch.Tensor, omega6: float) -> torch.Tensor:
    """Eq. 20: ``L_total = L_pixel + ω6 L_CCL``."""
    return l_pixel + omega6 * l_contrast


def _non_finite(named: Mapping[str, torch.Tensor]) -> list[str]:
    """Names whose tensor holds NaN/inf, with a single device-to-host transfer."""
    flags = torch.stack([torch.isfinite(t).all() for t in named.values()]).cpu().tolist()
    return [name for name, ok in zip(named, flags) if not ok]


class OCCOLoss(nn.Module):
    """Pixel loss + ω6 × contextual contrastive loss, per ``params.yaml``.

    ``forward(fused, vi, ir, ir_mask, vi_mask)`` takes (B, 1, H, W) tensors: fused output and source
    luminances in [0, 1], binary infrared/visible object masks; B = ``groups``·n (default 12 = 4 × 3,
    anchors and positives from the first group). It returns a dict of scalar tensors: ``ssim``,
    ``intensity``, ``texture``, ``pixel``, then ``unique_ir``, ``unique_vi``, ``shared_ir``,
    ``shared_vi``, ``background`` (Model-4: ``masked_intensity``), ``contrast`` and ``total``
    (backpropagate ``total``). A contrastive term skipped for this batch (its region empty in every
    anchor) is absent, not 0; ``contrast`` and ``total`` sum the terms present.

    NaN/inf in any input or in ``total`` raises NonFiniteLossError naming the inputs or terms, before
    anything is backpropagated; a training loop that prefers to skip such a batch catches it.
    """

    def __init__(
        self,
        *,
        omega1: float,
        omega2: float,
        omega3: float,
        omega4: float,
        omega5: float,
        omega6: float,
        cx_variant: str = "bounded",
        feature_space: str = "occo",
        groups: int = 4,
        vgg_weights: str | Path | None = None,
        vgg_random_init: bool = False,
    ) -> None:
        super().__init__()
        self.omega6 = omega6
        self.pixel = PixelLoss(omega4, omega5)
        if get_feature_space(feature_space).contrastive:
            self.contrast: nn.Module = ContextualContrastiveLoss(
                omega1=omega1,
                omega2=omega2,
                omega3=omega3,
                cx_variant=cx_variant,
                feature_space=feature_space,
                groups=groups,
                vgg_weights=vgg_weights,
                vgg_random_init=vgg_random_init,
            )
        else:
            self.contrast = MaskedIntensityLoss()

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> OCCOLoss:
        """Build from the parsed ``params.yaml``: omega1..omega6, ``loss.cx_variant``,
        ``ablation.feature_space``, ``train.vgg_weights`` and ``train.vgg_random_init``."""
        train = params.get("train") or {}
        return cls(
            **{f"omega{i}": float(params[f"omega{i}"]) for i in range(1, 7)},
            cx_variant=(params.get("loss") or {}).get("cx_variant", "bounded"),
            feature_space=(params.get("ablation") or {}).get("feature_space", "occo"),
            vgg_weights=train.get("vgg_weights"),
            vgg_random_init=bool(train.get("vgg_random_init", False)),
        )

    def forward(
        self, fused: torch.Tensor, vi: torch.Tensor, ir: torch.Tensor, ir_mask: torch.Tensor, vi_mask: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        inputs = {"fused": fused, "vi": vi, "ir": ir, "ir_mask": ir_mask, "vi_mask": vi_mask}
        if bad := _non_finite(inputs):
            raise NonFiniteLossError(f"NaN or inf in loss inputs: {', '.join(bad)}")
        terms = self.pixel(fused, vi, ir)
        terms.update(self.contrast(fused, vi, ir, ir_mask, vi_mask))
        terms["total"] = total_loss(terms["pixel"], terms["contrast"], self.omega6)
        if not bool(torch.isfinite(terms["total"])):
            raise NonFiniteLossError(f"non-finite loss terms: {', '.join(_non_finite(terms))}")
        return terms

    def extra_repr(self) -> str:
        return f"omega6={self.omega6}"
