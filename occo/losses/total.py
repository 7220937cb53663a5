"""Total training loss: the weighted sum of the terms ``loss.terms`` names (``LOSS_TERMS``), one module built once
per run (:func:`build_loss`).

    occo  Eq. 20: ``L_pixel + ω6 · L_CCL`` (:class:`OCCOLoss`; the default)
    rfn   Eq. 22-23: ``L_RFN = α (1 - SSIM(I_f, I_vi)) + L_feature`` (occo.losses.rfn; RFN-Nest's features)
    ccl   Eq. 24's ``β · L_CCL`` (Eq. 5), beside L_RFN: ``L_RFN+CCL = L_RFN + β L_CCL``

Model-4 (``ablation.feature_space: model4``, §4.4.1): Eq. 21 replaces L_int and L_CCL,
``L_total = L_ssim + ω4 L_abl + ω5 L_texture`` (``occo.losses.masked`` says why ω4).

``loss.compat: official`` computes every term as the authors' code does (within a relative 1e-4 of it in
float32, gradient included): ``occo.losses.pixel`` (SSIM, Sobel) and ``occo.losses.objective`` (the rest).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from occo.config import Params
from occo.losses.contrastive import ContextualContrastiveLoss, get_feature_space
from occo.losses.finite import NonFiniteLossError, non_finite
from occo.losses.masked import MaskedIntensityLoss
from occo.losses.pixel import PixelLoss, pixel_loss, ssim_loss, texture_loss
from occo.losses.rfn import RFNLoss

log = logging.getLogger(__name__)


def total_loss(l_pixel: torch.Tensor, l_contrast: torch.Tensor, omega6: float) -> torch.Tensor:
    """Eq. 20: ``L_total = L_pixel + ω6 L_CCL``."""
    return l_pixel + omega6 * l_contrast


def model4_total_loss(
    l_ssim: torch.Tensor, l_abl: torch.Tensor, l_texture: torch.Tensor, omega4: float, omega5: float
) -> torch.Tensor:
    """Model-4 (§4.4.1): Eq. 19-20 with Eq. 21 in place of L_int and L_CCL,
    ``L_total = L_ssim + ω4 L_abl + ω5 L_texture``."""
    return pixel_loss(l_ssim, l_abl, l_texture, omega4, omega5)


class OCCOLoss(nn.Module):
    """Pixel loss + ω6 × contextual contrastive loss (Eq. 20), per ``params.yaml``.

    ``forward(fused, ir=, vi=, ir_mask=, vi_mask=)`` takes (B, 1, H, W) tensors: fused output and source
    luminances in [0, 1], binary infrared/visible object masks; B = 4·n, the contrastive loss's groups
    (default 12 = 4 × 3, anchors and positives from the first group). It returns a dict of scalar tensors: ``ssim``,
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
        pixel: PixelLoss,
        omega6: float,
        contrast: ContextualContrastiveLoss | None = None,
        masked: MaskedIntensityLoss | None = None,
    ) -> None:
        super().__init__()
        if (contrast is None) == (masked is None):
            raise ValueError("OCCOLoss takes a contrastive loss (Eq. 20) or a masked intensity loss (Eq. 21), one")
        self.omega6 = omega6
        self.pixel = pixel
        self.contrast = contrast
        self.masked = masked

    @classmethod
    def from_config(cls, cfg: Params) -> OCCOLoss:
        """Built from the params: omega1..omega6, ``loss.compat``, ``ablation.feature_space`` and, for the
        contrastive loss, :func:`contrast_from_config`'s."""
        contrastive = get_feature_space(cfg.ablation.feature_space).contrastive
        return cls(
            pixel=PixelLoss(omega4=cfg.omega4, omega5=cfg.omega5, compat=cfg.loss.compat),
            omega6=cfg.omega6,
            contrast=contrast_from_config(cfg) if contrastive else None,
            masked=None if contrastive else MaskedIntensityLoss(omega1=cfg.omega1, omega2=cfg.omega2),
        )

    def forward(
        self, fused: torch.Tensor, *, ir: torch.Tensor, vi: torch.Tensor, ir_mask: torch.Tensor, vi_mask: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        inputs = {"fused": fused, "vi": vi, "ir": ir, "ir_mask": ir_mask, "vi_mask": vi_mask}
        if bad := non_finite(inputs):
            raise NonFiniteLossError(f"NaN or inf in loss inputs: {', '.join(bad)}")
        if self.masked is not None:  # Model-4
            compat = self.pixel.compat
            terms = {
                "ssim": ssim_loss(fused, ir=ir, vi=vi, compat=compat),
                "texture": texture_loss(fused, ir=ir, vi=vi, compat=compat),
            }
            terms.update(self.masked(fused, ir=ir, vi=vi, ir_mask=ir_mask, vi_mask=vi_mask))
            terms["total"] = model4_total_loss(
                terms["ssim"], terms["masked_intensity"], terms["texture"], self.pixel.omega4, self.pixel.omega5
            )
        else:
            terms = self.pixel(fused, ir=ir, vi=vi)
            terms.update(self.contrast(fused, ir=ir, vi=vi, ir_mask=ir_mask, vi_mask=vi_mask))
            terms["total"] = total_loss(terms["pixel"], terms["contrast"], self.omega6)
        if not bool(torch.isfinite(terms["total"])):
            raise NonFiniteLossError(f"non-finite loss terms: {', '.join(non_finite(terms))}")
        return terms

    def extra_repr(self) -> str:
        return f"omega6={self.omega6}"


def contrast_from_config(cfg: Params) -> ContextualContrastiveLoss:
    """L_CCL (Eq. 5) of the params: omega1..omega3, ``loss.compat``, ``loss.cx_variant``, ``loss.distance_form``,
    ``ablation.feature_space``, ``train.vgg_weights``, ``train.vgg_random_init`` (warned about here, once for both
    of the loss's VGG19 networks, whichever term builds it)."""
    if cfg.train.vgg_random_init:
        log.warning("the VGG19 loss networks have RANDOM weights (train.vgg_random_init: true): not the paper's")
    return ContextualContrastiveLoss(
        omega1=cfg.omega1,
        omega2=cfg.omega2,
        omega3=cfg.omega3,
        cx_variant=cfg.loss.cx_variant,
        distance_form=cfg.loss.distance_form,
        feature_space=cfg.ablation.feature_space,
        compat=cfg.loss.compat,
        vgg_weights=cfg.train.vgg_weights,
        vgg_random_init=cfg.train.vgg_random_init,
    )


def rfn_from_config(cfg: Params) -> RFNLoss:
    """L_RFN (Eq. 22-23) of the params: ``alpha``, ``loss.rfn_feature_weights``, ``loss.rfn_w_vi``,
    ``loss.rfn_w_ir``, ``loss.rfn_form``."""
    loss = cfg.loss
    return RFNLoss(
        alpha=cfg.alpha,
        feature_weights=loss.rfn_feature_weights,
        w_vi=loss.rfn_w_vi,
        w_ir=loss.rfn_w_ir,
        form=loss.rfn_form,
    )


@dataclass(frozen=True)
class LossTerm:
    """One named term of the total loss.

    ``build(cfg)``: its module, called ``module(fused, **inputs)``; ``value``: the entry of the module's output
    that enters the total; ``weight(cfg)``: its weight there; ``inputs``: the keyword inputs it takes (of
    ``ir``, ``vi``, ``ir_mask``, ``vi_mask``, ``features``); ``vgg``: it loads the VGG19 loss network.
    """

    build: Callable[[Params], nn.Module]
    value: str
    weight: Callable[[Params], float]
    inputs: tuple[str, ...]
    vgg: bool


SOURCES_AND_MASKS = ("ir", "vi", "ir_mask", "vi_mask")
LOSS_TERMS: dict[str, LossTerm] = {
    "occo": LossTerm(lambda cfg: OCCOLoss.from_config(cfg), "total", lambda cfg: 1.0, SOURCES_AND_MASKS, True),
    "rfn": LossTerm(rfn_from_config, "rfn", lambda cfg: 1.0, ("vi", "features"), False),
    "ccl": LossTerm(contrast_from_config, "contrast", lambda cfg: cfg.beta, SOURCES_AND_MASKS, True),
}
"""``loss.terms`` names -> terms (occo.config.types.LossTermName copies the keys)."""


def needs_features(terms: list[str]) -> bool:
    """Whether a term compares the network's intermediate features (the network must return them)."""
    return any("features" in LOSS_TERMS[t].inputs for t in terms)


class TotalLoss(nn.Module):
    """The sum of the named terms, each with its weight: ``forward(fused, ir=, vi=, ir_mask=, vi_mask=,
    features=None)`` returns every term's own entries (an entry's name is unique across terms), the value of each
    term under its ``LossTerm.value`` name, and ``total``. A single term of weight 1 whose value is already
    ``total`` (the default, ``occo``) is returned as it is, so the default loss is Eq. 20 bit for bit.

    NaN/inf in an input or in ``total`` raises NonFiniteLossError naming them, before anything is backpropagated.
    """

    def __init__(self, terms: Mapping[str, nn.Module], weights: Mapping[str, float]) -> None:
        super().__init__()
        self.terms = nn.ModuleDict(dict(terms))
        self.weights = dict(weights)

    def forward(self, fused: torch.Tensor, **inputs: torch.Tensor | dict | None) -> dict[str, torch.Tensor]:
        names = list(self.terms)
        if len(names) == 1 and LOSS_TERMS[names[0]].value == "total" and self.weights[names[0]] == 1.0:
            spec = LOSS_TERMS[names[0]]
            return self.terms[names[0]](fused, **{k: inputs[k] for k in spec.inputs})
        if bad := non_finite({"fused": fused, **{k: v for k, v in inputs.items() if isinstance(v, torch.Tensor)}}):
            raise NonFiniteLossError(f"NaN or inf in loss inputs: {', '.join(bad)}")
        out: dict[str, torch.Tensor] = {}
        total = None
        for name in names:
            spec = LOSS_TERMS[name]
            out.update(self.terms[name](fused, **{k: inputs[k] for k in spec.inputs}))
            weighted = out[spec.value] if self.weights[name] == 1.0 else self.weights[name] * out[spec.value]
            total = weighted if total is None else total + weighted
        out["total"] = total
        if not bool(torch.isfinite(total)):
            raise NonFiniteLossError(f"non-finite loss terms: {', '.join(non_finite(out))}")
        return out

    def extra_repr(self) -> str:
        return ", ".join(f"{name} x {w:g}" for name, w in self.weights.items())


def build_loss(cfg: Params) -> TotalLoss:
    """The total loss of ``loss.terms``, each term built from the params."""
    return TotalLoss(
        {name: LOSS_TERMS[name].build(cfg) for name in cfg.loss.terms},
        {name: LOSS_TERMS[name].weight(cfg) for name in cfg.loss.terms},
    )
