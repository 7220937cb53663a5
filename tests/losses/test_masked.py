"""Model-4's masked intensity loss (Eq. 21) on hand-made images, and its place in the total loss."""

from __future__ import annotations

import pytest
import torch

from occo.config import Params, override
from occo.losses.masked import MaskedIntensityLoss, masked_intensity_loss, masked_mean_square
from occo.losses.pixel import ssim_loss, texture_loss
from occo.losses.total import OCCOLoss

# One 2×3 image: fused 0.5, visible 0, infrared 0.9. Infrared object at (0,0) and (0,2), visible object
# at (0,1) and (0,2): infrared-unique (0,0), visible-unique (0,1), shared (0,2), background the row below.
FUSED = torch.full((1, 1, 2, 3), 0.5)
VI = torch.zeros(1, 1, 2, 3)
IR = torch.full((1, 1, 2, 3), 0.9)
IR_MASK = torch.tensor([[[[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]]]])
VI_MASK = torch.tensor([[[[0.0, 1.0, 1.0], [0.0, 0.0, 0.0]]]])


def test_eq21_terms_by_hand():
    out = MaskedIntensityLoss(omega1=0.3, omega2=0.7)(FUSED, vi=VI, ir=IR, ir_mask=IR_MASK, vi_mask=VI_MASK)
    # Squared differences averaged over all 6 pixels; the shared pixel is in no term.
    vi_unique = 0.5**2 / 6  # target visible
    ir_unique = 0.4**2 / 6  # target infrared (the printed vi_ūir would give 0.5² / 6)
    background = 3 * 0.5**2 / 6  # target visible
    assert out["masked_vi_unique"].item() == pytest.approx(vi_unique)
    assert out["masked_ir_unique"].item() == pytest.approx(ir_unique)
    assert out["masked_background"].item() == pytest.approx(background)
    assert out["masked_intensity"].item() == pytest.approx(0.3 * vi_unique + 0.7 * ir_unique + background)
    assert masked_intensity_loss(out, 1.0, 0.0).item() == pytest.approx(vi_unique + background)


def test_empty_region_adds_zero_and_masks_are_binarised():
    empty = torch.zeros_like(IR_MASK)
    out = MaskedIntensityLoss(omega1=0.5, omega2=0.5)(
        FUSED, vi=VI, ir=IR, ir_mask=empty, vi_mask=0.6 * VI_MASK + 0.2
    )  # 0.8 / 0.2 -> 1 / 0
    assert out["masked_ir_unique"].item() == 0.0
    assert out["masked_vi_unique"].item() == pytest.approx(2 * 0.5**2 / 6)  # (0,1) and (0,2) now unique
    assert masked_mean_square(FUSED, VI, torch.ones_like(VI)).item() == pytest.approx(0.25)


def test_shapes_must_match():
    with pytest.raises(ValueError, match="ir_mask is"):
        MaskedIntensityLoss(omega1=0.5, omega2=0.5)(FUSED, vi=VI, ir=IR, ir_mask=IR_MASK[..., :2], vi_mask=VI_MASK)


def model4(**omegas: float) -> OCCOLoss:
    """Model-4's loss with these weights, every other param the default."""
    return OCCOLoss.from_config(override(Params(), {"ablation.feature_space": "model4", **omegas}))


def test_model4_replaces_intensity_and_contrast_and_takes_omega4():
    g = torch.Generator().manual_seed(0)
    vi, ir, fused = (torch.rand(4, 1, 16, 16, generator=g) for _ in range(3))
    ir_mask = (torch.rand(4, 1, 16, 16, generator=g) > 0.6).float()
    vi_mask = (torch.rand(4, 1, 16, 16, generator=g) > 0.6).float()
    omegas = {"omega1": 0.3, "omega2": 0.7, "omega3": 0.5, "omega4": 6.0, "omega5": 2.0}
    out = model4(**omegas, omega6=10.0)(fused, vi=vi, ir=ir, ir_mask=ir_mask, vi_mask=vi_mask)
    assert list(out) == [
        "ssim",
        "texture",
        "masked_vi_unique",
        "masked_ir_unique",
        "masked_background",
        "masked_intensity",
        "total",
    ]  # fmt: skip  (no intensity, pixel or contrast: Eq. 21 replaces L_int and L_CCL)
    l_abl = MaskedIntensityLoss(omega1=0.3, omega2=0.7)(fused, vi=vi, ir=ir, ir_mask=ir_mask, vi_mask=vi_mask)[
        "masked_intensity"
    ]
    expected = (
        ssim_loss(fused, vi=vi, ir=ir, compat="fixed")
        + 6.0 * l_abl
        + 2.0 * texture_loss(fused, vi=vi, ir=ir, compat="fixed")
    )
    torch.testing.assert_close(out["total"], expected)
    other = model4(**omegas, omega6=0.1)(fused, vi=vi, ir=ir, ir_mask=ir_mask, vi_mask=vi_mask)
    torch.testing.assert_close(other["total"], out["total"])  # ω6 has no role in Model-4
