"""Contextual contrastive loss (Eq. 5-8, 13-14), masks, feature-space ablations and Eq. 21."""

from __future__ import annotations

import logging

import pytest
import torch

from occo.losses.contrastive import (
    ALL_LAYERS,
    DEEP_LAYERS,
    FEATURE_SPACES,
    TERMS,
    ContextualContrastiveLoss,
    contextual_contrastive_loss,
    contrastive_ratio,
    decompose_masks,
    masked_intensity_loss,
)

B, H = 12, 32  # 4 groups of 3, tiny images


def make_loss(feature_space: str = "occo", **kwargs) -> ContextualContrastiveLoss:
    return ContextualContrastiveLoss(
        omega1=0.5, omega2=0.5, omega3=0.5, feature_space=feature_space, vgg_random_init=True, **kwargs
    )


@pytest.fixture(scope="module")
def occo_loss() -> ContextualContrastiveLoss:
    torch.manual_seed(0)
    return make_loss()


@pytest.fixture(scope="module")
def model1_loss() -> ContextualContrastiveLoss:
    torch.manual_seed(0)
    return make_loss("model1")


def images(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(B, 1, H, H, generator=g), torch.rand(B, 1, H, H, generator=g)


def random_masks(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ir = torch.zeros(B, 1, H, H)
    vi = torch.zeros(B, 1, H, H)
    for b in range(B):  # one infrared and one visible rectangle per image, overlapping in part
        r, c = torch.randint(0, H // 2, (2,), generator=g).tolist()
        ir[b, :, r : r + H // 2, c : c + H // 2] = 1
        vi[b, :, r + H // 4 :, c + H // 4 :] = 1
    return ir, vi


def test_decompose_masks_by_hand():
    ir = torch.tensor([1.0, 1.0, 0.0, 0.0])
    vi = torch.tensor([1.0, 0.0, 1.0, 0.0])
    parts = decompose_masks(ir, vi)
    assert parts["shared"].tolist() == [1, 0, 0, 0]
    assert parts["ir_unique"].tolist() == [0, 1, 0, 0]
    assert parts["vi_unique"].tolist() == [0, 0, 1, 0]
    assert parts["background"].tolist() == [0, 0, 0, 1]
    ir_m, vi_m = random_masks()
    total = sum(decompose_masks(ir_m, vi_m).values())
    assert torch.equal(total, torch.ones_like(total))  # a partition of every pixel


def test_contrastive_ratio_by_hand_leaves_out_empty_negatives():
    d_pos = torch.tensor([1.0, 2.0])
    d_neg = torch.tensor([[1.0, 1.0], [3.0, 1.0], [100.0, 1.0]])
    valid = torch.tensor([[True, True], [True, True], [False, True]])
    torch.testing.assert_close(contrastive_ratio(d_pos, d_neg, valid, eps=0.0), torch.tensor([1 / 4, 2 / 3]))


def test_eq5_to_8_weights_unique_by_one_and_shared_by_omega1_omega2():
    # Eq. 6: both unique ratios weight 1; Eq. 7: ω1 on the shared ratio whose positive is visible,
    # ω2 on the one whose positive is infrared; Eq. 8: background weight 1.
    terms = {"unique_ir": 1.0, "unique_vi": 2.0, "shared_ir": 3.0, "shared_vi": 4.0, "background": 5.0}
    terms = {k: torch.tensor(v) for k, v in terms.items()}
    expected = (2.0 + 1.0) + (0.3 * 4.0 + 0.7 * 3.0) + 5.0  # 11.3; the old ω1·unique + ω2·shared wiring gave 12.8
    assert contextual_contrastive_loss(terms, omega1=0.3, omega2=0.7).item() == pytest.approx(expected)
    # Table 6's "1:0" keeps only the visible-positive shared ratio, "0:1" only the infrared one.
    assert contextual_contrastive_loss(terms, omega1=1.0, omega2=0.0).item() == pytest.approx(3.0 + 4.0 + 5.0)
    assert contextual_contrastive_loss(terms, omega1=0.0, omega2=1.0).item() == pytest.approx(3.0 + 3.0 + 5.0)


def test_masked_intensity_loss_eq21_by_hand():
    fused = torch.full((1, 1, 2, 2), 0.5)
    ir = torch.ones(1, 1, 2, 2)
    vi = torch.zeros(1, 1, 2, 2)
    ir_mask = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    vi_mask = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
    # |0.5 - 1| on 1 of 4 pixels + |0.5 - 0| on 2 of 4 pixels.
    assert masked_intensity_loss(fused, vi, ir, ir_mask, vi_mask).item() == pytest.approx(0.5 / 4 + 1.0 / 4)


@pytest.mark.parametrize("space", ["occo", "model1"])
def test_swapping_positive_and_negative_raises_the_loss(space, occo_loss, model1_loss):
    loss = occo_loss if space == "occo" else model1_loss
    vi, ir = images()
    ir_mask, vi_mask = torch.ones(B, 1, H, H), torch.zeros(B, 1, H, H)  # all infrared-unique
    fused = 0.8 * ir + 0.2 * vi
    normal = loss(fused, vi, ir, ir_mask, vi_mask)["unique_ir"]
    swapped = loss(fused, ir, vi, ir_mask, vi_mask)["unique_ir"]  # positive vi, negatives ir
    assert swapped > normal > 0


@pytest.mark.parametrize("space", ["occo", "model1"])
def test_identical_inputs_give_the_minimum(space, occo_loss, model1_loss):
    loss = occo_loss if space == "occo" else model1_loss
    vi, ir = images(2)
    ir_mask, vi_mask = random_masks(3)
    masks = decompose_masks(ir_mask, vi_mask)
    # Fused = infrared inside the infrared-unique region, visible elsewhere: every term whose
    # positive equals the fused image there reaches its minimum 0; shared_ir (positive ir) does not.
    fused = torch.where(masks["ir_unique"] > 0, ir, vi)
    out = loss(fused, vi, ir, ir_mask, vi_mask)
    for term in ("unique_ir", "unique_vi", "shared_vi", "background"):
        assert out[term].item() == pytest.approx(0.0, abs=1e-6)
    # (With masked 32×32 inputs a random VGG's contextual similarity saturates at 1 for any pair,
    # so the non-zero control is checked in the Euclidean space.)
    if space == "model1":
        assert out["shared_ir"].item() > 0.01


def test_empty_masks_skip_terms_once_without_nan(caplog):
    loss = make_loss()  # fresh: skips are logged once per module
    vi, ir = images(4)
    fused = (0.5 * (vi + ir)).requires_grad_()
    empty = torch.zeros(B, 1, H, H)
    with caplog.at_level(logging.DEBUG, logger="occo.losses.contrastive"):
        for _ in range(2):
            out = loss(fused, vi, ir, empty, empty)
    # Skipped terms are absent (issue 12: a 0 would be logged as if the loss had taken that value).
    assert list(out) == ["background", "contrast"]
    for term in ("unique_ir", "unique_vi", "shared_ir", "shared_vi"):
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING and term in r.getMessage()]
        assert len(warnings) == 1
    assert out["background"].item() > 0
    torch.testing.assert_close(out["contrast"], out["background"])
    out["contrast"].backward()
    assert torch.isfinite(fused.grad).all()


def test_partly_empty_anchors_and_negatives_stay_finite(occo_loss):
    vi, ir = images(5)
    ir_mask, vi_mask = random_masks(6)
    ir_mask[0] = 0  # first anchor: no infrared object
    vi_mask[3:6] = 0  # group 2: no visible object (its negatives are left out)
    fused = (0.5 * (vi + ir)).requires_grad_()
    out = occo_loss(fused, vi, ir, ir_mask, vi_mask)
    assert set(out) == {*TERMS, "contrast"} and all(torch.isfinite(out[t]) for t in TERMS)
    out["contrast"].backward()
    assert torch.isfinite(fused.grad).all() and fused.grad[:3].abs().sum() > 0
    # Only the first group's fused images are anchors (the public code's layout).
    assert fused.grad[3:].abs().sum() == 0


def test_bf16_autocast_keeps_terms_float32(occo_loss):
    vi, ir = images(7)
    ir_mask, vi_mask = random_masks(8)
    fused = 0.5 * (vi + ir)
    reference = occo_loss(fused, vi, ir, ir_mask, vi_mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = occo_loss(fused, vi, ir, ir_mask, vi_mask)
    for term in (*TERMS, "contrast"):
        assert out[term].dtype == torch.float32 and torch.isfinite(out[term])
    assert out["contrast"].item() == pytest.approx(reference["contrast"].item(), rel=0.2)


def test_feature_space_selection_by_name(occo_loss, model1_loss):
    assert list(occo_loss.vgg.layers) == list(DEEP_LAYERS) and occo_loss.contextual is not None
    assert occo_loss.contextual._fn.keywords["omega3"] == 0.5
    assert list(model1_loss.vgg.layers) == list(DEEP_LAYERS) and model1_loss.contextual is None
    model2 = make_loss("model2")
    assert list(model2.vgg.layers) == list(ALL_LAYERS) and model2.contextual is not None
    assert model2.contextual.max_points == 65 * 65
    model3 = make_loss("model3")
    assert list(model3.vgg.layers) == list(ALL_LAYERS) and model3.contextual is None
    model5 = make_loss("model5")
    assert model5.contextual._fn.keywords["omega3"] == 0.0
    assert set(FEATURE_SPACES) == {"occo", "model1", "model2", "model3", "model4", "model5"}
    with pytest.raises(ValueError, match="MaskedIntensityLoss"):
        make_loss("model4")
    with pytest.raises(ValueError, match="ablation.feature_space"):
        make_loss("model9")
    # Same inputs, different spaces, different values.
    vi, ir = images(9)
    ir_mask, vi_mask = random_masks(10)
    fused = 0.5 * (vi + ir)
    values = [m(fused, vi, ir, ir_mask, vi_mask)["unique_ir"].item() for m in (occo_loss, model1_loss, model3)]
    assert len({round(v, 6) for v in values}) == 3


def test_batch_must_split_into_groups(occo_loss):
    x = torch.rand(10, 1, H, H)
    with pytest.raises(ValueError, match="4 groups"):
        occo_loss(x, x, x, x, x)
