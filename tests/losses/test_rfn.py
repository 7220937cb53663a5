"""occo.losses.rfn: L_RFN (Eq. 22-23), RFN-Nest's auto-encoder loss and the authors' MS-SSIM."""

from __future__ import annotations

import pytest
import torch

from occo.losses.finite import NonFiniteLossError
from occo.losses.rfn import (
    MS_SSIM_WEIGHTS,
    AutoencoderLoss,
    RFNLoss,
    authors_ms_ssim,
    feature_loss,
    frobenius_squared,
    mean_squared,
    single_scale_ssim,
    ssim_and_contrast,
)

# msssim(x, y, normalize=True) of the authors' pytorch_msssim (imagefusion-rfn-nest, commit 76e4e05) on the
# inputs of _pair(scale), computed with their file in float32 on the CPU.
AUTHORS_MS_SSIM = {255.0: 0.9790879487991333, 60.0: 0.675993025302887}


def _pair(scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 1, 64, 48, generator=g) * scale
    return x, (x + torch.randn(2, 1, 64, 48, generator=g) * 20).clamp(0, 255)


@pytest.mark.parametrize("scale", list(AUTHORS_MS_SSIM))
def test_code_form_is_the_authors_ms_ssim(scale):
    x, y = _pair(scale)
    assert authors_ms_ssim(x, y, fixed=False).item() == pytest.approx(AUTHORS_MS_SSIM[scale], abs=1e-6)


def test_fixed_form_raises_the_coarsest_ssim_to_its_own_weight_with_range_255():
    x, y = _pair(60.0)  # a dark image: the code's range guess drops to 1 at every scale
    sims, contrasts = [], []
    for level in range(5):
        if level:
            x, y = torch.nn.functional.avg_pool2d(x, 2), torch.nn.functional.avg_pool2d(y, 2)
        s, c = ssim_and_contrast(x, y, 255.0)
        sims.append((s + 1) / 2)
        contrasts.append((c + 1) / 2)
    want = sims[-1] ** MS_SSIM_WEIGHTS[-1]
    for c, w in zip(contrasts[:-1], MS_SSIM_WEIGHTS[:-1]):
        want = want * c**w
    got = authors_ms_ssim(*_pair(60.0), fixed=True)
    torch.testing.assert_close(got, want)
    assert got > AUTHORS_MS_SSIM[60.0] + 0.2  # the code's range 1 makes a dark image's SSIM collapse
    same = torch.rand(1, 1, 40, 40) * 255
    assert authors_ms_ssim(same, same, fixed=True).item() == pytest.approx(1.0, abs=1e-6)


def test_feature_term_eq23_and_its_two_distances():
    fused = [torch.ones(1, 2, 4, 4), torch.ones(1, 2, 2, 2)]
    ir = [torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 2, 2)]
    vi = [torch.full((1, 2, 4, 4), 0.5), torch.full((1, 2, 2, 2), 0.5)]
    # target 3 x 0.5 + 6 x 0 = 1.5; (1 - 1.5)^2 = 0.25 per value: mean 0.25, sum 0.25 x (32, 8) values
    kwargs = {"ir": ir, "vi": vi, "weights": [1.0, 10.0], "w_vi": 3.0, "w_ir": 6.0}
    assert feature_loss(fused, distance=mean_squared, **kwargs).item() == pytest.approx(0.25 + 10 * 0.25)
    assert feature_loss(fused, distance=frobenius_squared, **kwargs).item() == pytest.approx(8 + 10 * 2)


def test_rfn_loss_backpropagates_into_the_fused_features_only():
    fused = [torch.rand(2, 3, 8, 8, requires_grad=True)]
    sources = {"ir": [torch.rand(2, 3, 8, 8, requires_grad=True)], "vi": [torch.rand(2, 3, 8, 8, requires_grad=True)]}
    image = torch.rand(2, 1, 32, 32, requires_grad=True)
    loss = RFNLoss(alpha=700.0, feature_weights=[1.0], w_vi=3.0, w_ir=6.0)
    out = loss(image, vi=torch.rand(2, 1, 32, 32), features={"fused": fused, **sources})
    assert set(out) == {"rfn_detail", "rfn_feature", "rfn"}
    torch.testing.assert_close(out["rfn"], out["rfn_detail"] + out["rfn_feature"])
    out["rfn"].backward()
    assert fused[0].grad is not None and image.grad is not None
    assert sources["ir"][0].grad is None and sources["vi"][0].grad is None  # the encoder's features are targets


def test_paper_form_is_single_scale_ssim_and_frobenius():
    x, y = _pair(255.0)
    features = {"fused": [x], "ir": [y], "vi": [y]}
    paper = RFNLoss(alpha=2.0, feature_weights=[1.0], w_vi=0.5, w_ir=0.5, form="paper")(
        x / 255, vi=y / 255, features=features
    )
    torch.testing.assert_close(paper["rfn_detail"], 2.0 * (1 - single_scale_ssim(x, y)))
    torch.testing.assert_close(paper["rfn_feature"], frobenius_squared(x, y))


def test_autoencoder_loss_pixel_plus_lambda_ssim_on_the_grey_scale():
    image = torch.rand(3, 1, 64, 64, generator=torch.Generator().manual_seed(1))
    perfect = AutoencoderLoss(lam=100.0)(image * 255, image)
    assert perfect["autoencoder_total"].item() == pytest.approx(0.0, abs=1e-3)
    off = AutoencoderLoss(lam=100.0)(image * 255 + 10, image)
    assert off["autoencoder_pixel"].item() == pytest.approx(100.0, rel=1e-4)  # (10 grey levels)^2
    torch.testing.assert_close(off["autoencoder_total"], off["autoencoder_pixel"] + off["autoencoder_ssim"])


def test_a_non_finite_autoencoder_loss_raises_naming_its_terms():
    image = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(2))
    output = image * 255
    output[0, 0, 0, 0] = float("nan")
    with pytest.raises(NonFiniteLossError, match="non-finite loss terms: autoencoder_pixel, .*autoencoder_total"):
        AutoencoderLoss(lam=100.0)(output, image)
