"""Pixel-loss terms (Eq. 15-19) on hand-made tensors with values worked out by hand."""

from __future__ import annotations

from typing import get_args

import pytest
import torch

from occo.config.types import Compat
from occo.losses.pixel import (
    SOBEL_FORMS,
    SSIM_FORMS,
    PixelLoss,
    infrared_brighter_mask,
    intensity_loss,
    pixel_loss,
    ssim_loss,
    texture_loss,
    zero_padded_sobel_abs,
    zero_padded_ssim,
)


def const(value: float, h: int = 16, w: int = 16, b: int = 2) -> torch.Tensor:
    return torch.full((b, 1, h, w), value)


@pytest.mark.parametrize("compat", ["fixed", "official"])
def test_ssim_loss_zero_for_identical_images(compat):
    x = torch.rand(2, 1, 24, 24, generator=torch.Generator().manual_seed(0))
    assert ssim_loss(x, vi=x, ir=x, compat=compat).item() == pytest.approx(0.0, abs=1e-6)


def test_ssim_loss_of_constant_images_by_hand():
    # Flat windows: σ = 0, so SSIM = (2 μx μy + C1) / (μx² + μy² + C1) with C1 = 0.01².
    c1 = 0.01**2
    s = (2 * 0.2 * 0.6 + c1) / (0.2**2 + 0.6**2 + c1)
    assert ssim_loss(const(0.2), vi=const(0.6), ir=const(0.6), compat="fixed").item() == pytest.approx(
        2 * (1 - s), rel=1e-5
    )
    assert ssim_loss(const(0.2), vi=const(0.2), ir=const(0.6), compat="fixed").item() == pytest.approx(1 - s, rel=1e-5)


def test_infrared_brighter_mask():
    vi = torch.tensor([[[[0.1, 0.5, 0.9, 0.4]]]])
    ir = torch.tensor([[[[0.2, 0.5, 0.3, 0.8]]]])
    assert infrared_brighter_mask(vi=vi, ir=ir).flatten().tolist() == [1.0, 0.0, 0.0, 1.0]


def test_intensity_loss_by_hand():
    # ir brighter everywhere: mean (0.5 - 0)² + mean |0.5 - 1| = 0.25 + 0.5.
    assert intensity_loss(const(0.5), vi=const(0.0), ir=const(1.0)).item() == pytest.approx(0.75)
    # ir darker everywhere: only the visible MSE remains.
    assert intensity_loss(const(0.5), vi=const(0.8), ir=const(0.2)).item() == pytest.approx(0.09)
    # half the pixels ir-brighter: the L1 part is averaged over all pixels.
    ir = torch.cat([const(1.0, w=8), const(0.0, w=8)], dim=3)
    assert intensity_loss(const(0.5), vi=const(0.5), ir=ir).item() == pytest.approx(0.25)


def test_texture_loss_zero_for_flat_images_and_edges_of_the_sources():
    edge = torch.cat([const(0.0, w=8), const(1.0, w=8)], dim=3)
    assert texture_loss(const(0.3), vi=const(0.1), ir=const(0.9), compat="fixed").item() == pytest.approx(0.0, abs=1e-6)
    assert texture_loss(edge, vi=edge, ir=const(0.5), compat="fixed").item() == pytest.approx(0.0, abs=1e-6)


def test_texture_loss_of_a_step_edge_by_hand():
    # A 0 -> 1 step between columns 7 and 8: unnormalised Sobel |∂x| = 1 + 2 + 1 = 4 on those two
    # columns, 0 elsewhere (replicate border); |∂y| = 0. Sources flat: L_tex = 2·4·H / (H·W) = 8 / W.
    edge = torch.cat([const(0.0, w=8), const(1.0, w=8)], dim=3)
    assert texture_loss(edge, vi=const(0.2), ir=const(0.7), compat="fixed").item() == pytest.approx(8 / 16)
    # Sources carry the edge, the fused image does not: same value by symmetry of |·|.
    assert texture_loss(const(0.5), vi=edge, ir=const(0.0), compat="fixed").item() == pytest.approx(8 / 16)


def test_pixel_loss_combination_and_module():
    g = torch.Generator().manual_seed(1)
    f, vi, ir = (torch.rand(2, 1, 20, 20, generator=g) for _ in range(3))
    terms = PixelLoss(omega4=7.0, omega5=3.0, compat="fixed")(f, vi=vi, ir=ir)
    assert set(terms) == {"ssim", "intensity", "texture", "pixel"}
    fixed = {"compat": "fixed"}
    expected = (
        ssim_loss(f, vi=vi, ir=ir, **fixed)
        + 7.0 * intensity_loss(f, vi=vi, ir=ir)
        + 3.0 * texture_loss(f, vi=vi, ir=ir, **fixed)
    )
    assert terms["pixel"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert pixel_loss(torch.tensor(1.0), torch.tensor(2.0), torch.tensor(3.0), 10, 1).item() == 24.0


@pytest.mark.parametrize("compat", ["fixed", "official"])
def test_pixel_terms_float32_under_bf16_autocast(compat):
    g = torch.Generator().manual_seed(2)
    f, vi, ir = (torch.rand(2, 1, 20, 20, generator=g) for _ in range(3))
    ref = PixelLoss(omega4=10, omega5=1, compat=compat)(f, vi=vi, ir=ir)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = PixelLoss(omega4=10, omega5=1, compat=compat)(f.bfloat16(), vi=vi, ir=ir)
    for name, value in out.items():
        assert value.dtype == torch.float32
        assert value.item() == pytest.approx(ref[name].item(), rel=0.05)


def test_forms_cover_every_compat():
    assert list(SSIM_FORMS) == list(SOBEL_FORMS) == list(get_args(Compat))


def test_official_sobel_sees_an_edge_at_the_zero_padded_border():
    """d6: zero padding makes a flat image's border an edge (the authors' Sobelxy); kornia's replicated border
    does not. Inside, both give the unnormalised Sobel response."""
    flat = const(0.5, h=6, w=6, b=1)
    gx, gy = zero_padded_sobel_abs(flat)[0, 0]
    assert gx[2, 0].item() == pytest.approx(0.5 * 4) and gx[0, 0].item() == pytest.approx(0.5 * 3)  # 1+2+1, corner 2+1
    assert gx[2, 2].item() == 0.0 and gy[0, 3].item() == pytest.approx(0.5 * 4)
    assert SOBEL_FORMS["fixed"](flat).abs().max().item() == 0.0
    assert texture_loss(const(0.5), vi=const(0.5), ir=const(0.5), compat="official").item() == 0.0
    assert texture_loss(const(0.3), vi=const(0.1), ir=const(0.9), compat="official").item() > 0.0  # border edges


def test_official_ssim_is_the_zero_padded_map_mean():
    """d5: the 11x11 window with zero padding 5, so the H x W map reaches the border; for flat images the
    border windows see the black padding: their means shrink, C1 then weighs more."""
    a, b = const(0.2, h=12, w=12, b=1), const(0.6, h=12, w=12, b=1)
    centre = zero_padded_ssim(a, b)
    c1 = 0.01**2
    interior = (2 * 0.2 * 0.6 + c1) / (0.2**2 + 0.6**2 + c1)
    assert SSIM_FORMS["fixed"](a, b).item() == pytest.approx(interior, rel=1e-4)  # only the valid 2x2 map
    assert centre.shape == (1,) and centre.item() != pytest.approx(interior, rel=1e-3)
    torch.testing.assert_close(zero_padded_ssim(a, a), torch.ones(1))
