"""Model-4 of §4.4.1: the masked intensity loss of Eq. 21, in place of L_int (Eq. 17) and L_CCL (Eq. 5).

    L_abl = ω1 ‖f_ūvi - vi_ūvi‖₂ + ω2 ‖f_ūir - ir_ūir‖₂ + ‖f_bg - vi_bg‖₂                  (Eq. 21)

with x_R = x ⊙ R for the regions of §3.2. What the paper leaves open, and what is taken here
(docs/fidelity.md lists the same):

* Target of the infrared-unique term: printed ``vi_ūir``, read as ``ir_ūir``. Everywhere else the
  infrared-unique region takes the infrared image as its positive (§3.3, Eq. 6), ω2 is "infrared
  information" (§4.4.1), and with ``vi_ūir`` every term would pull towards the visible image, so
  the masks would separate nothing.
* ``‖·‖₂``: Eq. 17's l2 term on a masked region, ``(1/(B·H·W)) Σ (R ⊙ (f - x))²``: the squared
  difference averaged over all pixels of the batch, the paper's "applying the masks to intensity
  losses". Not an l2 norm (it would grow with the image size) and not a mean over the region's own
  pixels (a few pixels would weigh as much as a whole image); an empty region adds 0.
* Weight in the total: L_abl takes L_int's place in Eq. 19, ``L_total = L_ssim + ω4 L_abl + ω5
  L_texture``, and L_CCL is dropped from Eq. 20 (ω6 unused). With the paper's ω4 = ω6 = 10 the other
  reading, ``ω6 L_abl``, is the same loss.
* Every image of the batch contributes: without contrast there are no anchor groups.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from occo.masks.decompose import decompose_masks

PARTS: dict[str, tuple[str, str]] = {
    "masked_vi_unique": ("vi_unique", "vi"),
    "masked_ir_unique": ("ir_unique", "ir"),
    "masked_background": ("background", "vi"),
}
"""Eq. 21's three terms: their region of ``decompose_masks`` and their target image."""


def masked_mean_square(fused: torch.Tensor, target: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """One term of Eq. 21, ``‖f_R - x_R‖₂`` read as ``(1/(B·H·W)) Σ (R ⊙ (f - x))²``, in float32."""
    return (region.float() * (fused.float() - target.float())).pow(2).mean()


def masked_intensity_loss(parts: Mapping[str, torch.Tensor], omega1: float, omega2: float) -> torch.Tensor:
    """Eq. 21: ``L_abl = ω1 ‖f_ūvi - vi_ūvi‖₂ + ω2 ‖f_ūir - ir_ūir‖₂ + ‖f_bg - vi_bg‖₂`` from its three terms."""
    return omega1 * parts["masked_vi_unique"] + omega2 * parts["masked_ir_unique"] + parts["masked_background"]


class MaskedIntensityLoss(nn.Module):
    """Eq. 21 (Model-4); ``forward`` returns its three terms (``PARTS``) and ``masked_intensity`` = L_abl.

    ``forward(fused, ir=, vi=, ir_mask=, vi_mask=)``: (B, 1, H, W) tensors, images in [0, 1], masks
    binarised at 0.5.
    """

    def __init__(self, *, omega1: float, omega2: float) -> None:
        super().__init__()
        self.omega1, self.omega2 = omega1, omega2

    def forward(
        self, fused: torch.Tensor, *, ir: torch.Tensor, vi: torch.Tensor, ir_mask: torch.Tensor, vi_mask: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        for name, t in (("vi", vi), ("ir", ir), ("ir_mask", ir_mask), ("vi_mask", vi_mask)):
            if t.shape != fused.shape:
                raise ValueError(f"{name} is {tuple(t.shape)}; expected the fused image's {tuple(fused.shape)}")
        regions = decompose_masks(ir_mask=ir_mask, vi_mask=vi_mask)
        images = {"vi": vi, "ir": ir}
        out = {name: masked_mean_square(fused, images[m], regions[r]) for name, (r, m) in PARTS.items()}
        out["masked_intensity"] = masked_intensity_loss(out, self.omega1, self.omega2)
        return out

    def extra_repr(self) -> str:
        return f"omega1={self.omega1}, omega2={self.omega2}"
