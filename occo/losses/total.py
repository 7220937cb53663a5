"""Total training loss (Eq. 20): ``L_total = L_pixel + ω6 · L_CCL``, one module built once per run.

Model-4 (``ablation.feature_space: model4``, §4.4.1): Eq. 21 replaces L_int and L_CCL,
``L_total = L_ssim + ω4 L_abl + ω5 L_texture`` (``occo.losses.masked`` says why ω4).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from occo.config import Params
from occo.losses.contrastive import ContextualContrastiveLoss, get_feature_space
from occo.losses.masked import MaskedIntensityLoss
from occo.losses.pixel import PixelLoss, pixel_loss, ssim_loss, texture_loss

log = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
    """An input or a loss term holds NaN or ±inf; the message names which."""


def total_loss(l_pixel: torch.Tensor, l_contrast: torch.Tensor, omega6: float) -> torch.Tensor:
    """Eq. 20: ``L_total = L_pixel + ω6 L_CCL``."""
    return l_pixel + omega6 * l_contrast


def model4_total_loss(
    l_ssim: torch.Tensor, l_abl: torch.Tensor, l_texture: torch.Tensor, omega4: float, omega5: float
) -> torch.Tensor:
    """Model-4 (§4.4.1): Eq. 19-20 with Eq. 21 in place of L_int and L_CCL,
    ``L_total = L_ssim + ω4 L_abl + ω5 L_texture``."""
    return pixel_loss(l_ssim, l_abl, l_texture, omega4, omega5)


def _non_finite(named: Mapping[str, torch.Tensor]) -> list[str]:
    """Names whose tensor holds NaN/inf, with a single device-to-host transfer."""
    flags = torch.stack([torch.isfinite(t).all() for t in named.values()]).cpu().tolist()
    return [name for name, ok in zip(named, flags) if not ok]


class OCCOLoss(nn.Module):
    """Pixel loss + ω6 × contextual contrastive loss (Eq. 20), per ``params.yaml``.

    ``forward(fused, ir=, vi=, ir_mask=, vi_mask=)`` takes (B, 1, H, W) tensors: fused output and source
    luminances in [0, 1], binary infrared/visible object masks; B = ``groups``·n (default 12 = 4 × 3,
    anchors and positives from the first group). It returns a dict of scalar tensors: ``ssim``,
    ``intensity``, ``texture``, ``pixel``, then ``unique_ir``, ``unique_vi``, ``shared_ir``,
    ``shared_vi``, ``background``, ``contrast`` and ``total`` (backpropagate ``total``). A
    contrastive term skipped for this batch (its region empty in every anchor) is absent, not 0;
    ``contrast`` and ``total`` sum the terms present. Model-4: ``ssim``, ``texture``, the terms of
    ``MaskedIntensityLoss`` and ``total`` (no ``intensity``, ``pixel`` or ``contrast``).

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
        distance_form: str = "code",
        feature_space: str = "occo",
        groups: int = 4,
        vgg_weights: str | Path | None = None,
        vgg_random_init: bool = False,
    ) -> None:
        super().__init__()
        self.omega6 = omega6
        self.pixel = PixelLoss(omega4, omega5)
        self.contrast: ContextualContrastiveLoss | None = None
        self.masked: MaskedIntensityLoss | None = None
        if get_feature_space(feature_space).contrastive:
            self.contrast = ContextualContrastiveLoss(
                omega1=omega1,
                omega2=omega2,
                omega3=omega3,
                cx_variant=cx_variant,
                distance_form=distance_form,
                feature_space=feature_space,
                groups=groups,
                vgg_weights=vgg_weights,
                vgg_random_init=vgg_random_init,
            )
        else:
            self.masked = MaskedIntensityLoss(omega1, omega2)

    @classmethod
    def from_config(cls, cfg: Params) -> OCCOLoss:
        """Built from the params: omega1..omega6, ``loss.cx_variant``, ``loss.distance_form``,
        ``ablation.feature_space``, ``train.vgg_weights`` and ``train.vgg_random_init`` (warned about here, once
        for both of the loss's VGG19 networks)."""
        if cfg.train.vgg_random_init:
            log.warning("the VGG19 loss networks have RANDOM weights (train.vgg_random_init: true): not the paper's")
        return cls(
            omega1=cfg.omega1,
            omega2=cfg.omega2,
            omega3=cfg.omega3,
            omega4=cfg.omega4,
            omega5=cfg.omega5,
            omega6=cfg.omega6,
            cx_variant=cfg.loss.cx_variant,
            distance_form=cfg.loss.distance_form,
            feature_space=cfg.ablation.feature_space,
            vgg_weights=cfg.train.vgg_weights,
            vgg_random_init=cfg.train.vgg_random_init,
        )

    def forward(
        self, fused: torch.Tensor, *, ir: torch.Tensor, vi: torch.Tensor, ir_mask: torch.Tensor, vi_mask: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        inputs = {"fused": fused, "vi": vi, "ir": ir, "ir_mask": ir_mask, "vi_mask": vi_mask}
        if bad := _non_finite(inputs):
            raise NonFiniteLossError(f"NaN or inf in loss inputs: {', '.join(bad)}")
        if self.masked is not None:  # Model-4
            terms = {"ssim": ssim_loss(fused, ir=ir, vi=vi), "texture": texture_loss(fused, ir=ir, vi=vi)}
            terms.update(self.masked(fused, ir=ir, vi=vi, ir_mask=ir_mask, vi_mask=vi_mask))
            terms["total"] = model4_total_loss(
                terms["ssim"], terms["masked_intensity"], terms["texture"], self.pixel.omega4, self.pixel.omega5
            )
        else:
            terms = self.pixel(fused, ir=ir, vi=vi)
            terms.update(self.contrast(fused, ir=ir, vi=vi, ir_mask=ir_mask, vi_mask=vi_mask))
            terms["total"] = total_loss(terms["pixel"], terms["contrast"], self.omega6)
        if not bool(torch.isfinite(terms["total"])):
            raise NonFiniteLossError(f"non-finite loss terms: {', '.join(_non_finite(terms))}")
        return terms

    def extra_repr(self) -> str:
        return f"omega6={self.omega6}"
