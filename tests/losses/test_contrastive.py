"""Contextual contrastive loss (Eq. 5-8, 13-14), masks, distance forms and feature-space ablations."""

from __future__ import annotations

import logging

import pytest
import torch

from occo.losses.contrastive import (
    ALL_LAYERS,
    DEEP_LAYERS,
    DISTANCE_FORMS,
    FEATURE_SPACES,
    TERMS,
    ContextualContrastiveLoss,
    contextual_contrastive_loss,
    contrastive_ratio,
    decompose_masks,
    l2_distance,
    mean_squared_distance,
    per_layer_ratio,
    summed_layer_ratio,
)

B, H = 12, 32  # 4 groups of 3, tiny images


def make_loss(feature_space: str = "occo", **kwargs) -> ContextualContrastiveLoss:
    forms = {"cx_variant": "bounded", "distance_form": "code", "compat": "fixed"} | kwargs
    return ContextualContrastiveLoss(
        omega1=0.5, omega2=0.5, omega3=0.5, feature_space=feature_space, vgg_weights=None, vgg_random_init=True, **forms
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
    parts = decompose_masks(ir_mask=ir, vi_mask=vi)
    assert parts["shared"].tolist() == [1, 0, 0, 0]
    assert parts["ir_unique"].tolist() == [0, 1, 0, 0]
    assert parts["vi_unique"].tolist() == [0, 0, 1, 0]
    assert parts["background"].tolist() == [0, 0, 0, 1]
    ir_m, vi_m = random_masks()
    total = sum(decompose_masks(ir_mask=ir_m, vi_mask=vi_m).values())
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


# Hand-made distances for 2 layers (relu4_4, relu5_4), G = 2 groups, n = 2 anchors.
D_POS = torch.tensor([[1.0, 2.0], [3.0, 1.0]])  # (L, n)
D_NEG = torch.tensor([[[2.0, 4.0], [2.0, 4.0]], [[1.0, 1.0], [5.0, 1.0]]])  # (L, G, n)
NEG_VALID = torch.tensor([[True, True], [True, False]])  # group 2's second negative: empty region


def test_per_layer_ratio_is_the_public_code_form_by_hand():
    # Σ_l λ_l D_l(A,P) / Σ_k D_l(A,N_k), λ = (0.25, 1); anchor 2 sums only its valid negative.
    expected = torch.tensor([0.25 * 1 / 4 + 1.0 * 3 / 6, 0.25 * 2 / 4 + 1.0 * 1 / 1])
    got = per_layer_ratio(D_POS, D_NEG, NEG_VALID, torch.tensor([0.25, 1.0]), eps=0.0)
    torch.testing.assert_close(got, expected)


def test_summed_layer_ratio_is_eq13_as_printed_by_hand():
    # D = Σ_l D_l (no weights), one ratio: (1 + 3) / (2 + 2 + 1 + 5), (2 + 1) / (4 + 1).
    expected = torch.tensor([4 / 10, 3 / 5])
    torch.testing.assert_close(summed_layer_ratio(D_POS, D_NEG, NEG_VALID, eps=0.0), expected)
    assert not torch.allclose(expected, per_layer_ratio(D_POS, D_NEG, NEG_VALID, torch.ones(2), eps=0.0))


def test_euclidean_distances_of_eq14_by_hand():
    a = torch.zeros(2, 1, 2, 2)
    b = torch.tensor([[[[3.0, 4.0], [0.0, 0.0]]], [[[1.0, 1.0], [1.0, 1.0]]]])
    torch.testing.assert_close(mean_squared_distance(a, b), torch.tensor([25 / 4, 1.0]))  # the code's MSE
    torch.testing.assert_close(l2_distance(a, b), torch.tensor([5.0, 2.0]))  # the paper's ‖·‖₂
    x = torch.ones(1, 1, 2, 2, requires_grad=True)
    l2_distance(x, torch.ones(1, 1, 2, 2)).sum().backward()  # anchor equal to its positive
    assert torch.equal(x.grad, torch.zeros_like(x))
    assert (
        DISTANCE_FORMS["code"].euclidean is mean_squared_distance and DISTANCE_FORMS["paper"].euclidean is l2_distance
    )


@pytest.mark.parametrize("space", ["occo", "model1"])
def test_swapping_positive_and_negative_raises_the_loss(space, occo_loss, model1_loss):
    loss = occo_loss if space == "occo" else model1_loss
    vi, ir = images()
    ir_mask, vi_mask = torch.ones(B, 1, H, H), torch.zeros(B, 1, H, H)  # all infrared-unique
    fused = 0.8 * ir + 0.2 * vi
    normal = loss(fused, vi=vi, ir=ir, ir_mask=ir_mask, vi_mask=vi_mask)["unique_ir"]
    swapped = loss(fused, vi=ir, ir=vi, ir_mask=ir_mask, vi_mask=vi_mask)["unique_ir"]  # positive vi, negatives ir
    assert swapped > normal > 0


@pytest.mark.parametrize("space", ["occo", "model1"])
def test_identical_inputs_give_the_minimum(space, occo_loss, model1_loss):
    loss = occo_loss if space == "occo" else model1_loss
    vi, ir = images(2)
    ir_mask, vi_mask = random_masks(3)
    masks = decompose_masks(ir_mask=ir_mask, vi_mask=vi_mask)
    # Fused = infrared inside the infrared-unique region, visible elsewhere: every term whose
    # positive equals the fused image there reaches its minimum 0; shared_ir (positive ir) does not.
    fused = torch.where(masks["ir_unique"] > 0, ir, vi)
    out = loss(fused, vi=vi, ir=ir, ir_mask=ir_mask, vi_mask=vi_mask)
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
            out = loss(fused, vi=vi, ir=ir, ir_mask=empty, vi_mask=empty)
    # Skipped terms are absent (a 0 would be logged as if the loss had taken that value).
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
    out = occo_loss(fused, vi=vi, ir=ir, ir_mask=ir_mask, vi_mask=vi_mask)
    assert set(out) == {*TERMS, "contrast"} and all(torch.isfinite(out[t]) for t in TERMS)
    out["contrast"].backward()
    assert torch.isfinite(fused.grad).all() and fused.grad[:3].abs().sum() > 0
    # Only the first group's fused images are anchors (the public code's layout).
    assert fused.grad[3:].abs().sum() == 0


def test_bf16_autocast_keeps_terms_float32(occo_loss):
    vi, ir = images(7)
    ir_mask, vi_mask = random_masks(8)
    fused = 0.5 * (vi + ir)
    reference = occo_loss(fused, vi=vi, ir=ir, ir_mask=ir_mask, vi_mask=vi_mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = occo_loss(fused, vi=vi, ir=ir, ir_mask=ir_mask, vi_mask=vi_mask)
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
        make_loss("model4")  # Eq. 21 replaces the contrastive loss (occo.losses.masked)
    with pytest.raises(ValueError, match="ablation.feature_space"):
        make_loss("model9")
    # Same inputs, different spaces, different values.
    vi, ir = images(9)
    ir_mask, vi_mask = random_masks(10)
    fused = 0.5 * (vi + ir)
    values = [
        m(fused, vi=vi, ir=ir, ir_mask=ir_mask, vi_mask=vi_mask)["unique_ir"].item()
        for m in (occo_loss, model1_loss, model3)
    ]
    assert len({round(v, 6) for v in values}) == 3


def test_distance_form_selects_how_layers_enter_the_ratio():
    # Model-1 (Euclidean on relu4_4 and relu5_4): a random VGG's contextual similarity saturates on
    # these tiny crops, the Euclidean distances do not; the ratio functions are checked by hand above.
    space = "model1"
    vi, ir = images(11)
    ir_mask, vi_mask = random_masks(12)
    fused = 0.7 * ir + 0.3 * vi
    out = {}
    for form in DISTANCE_FORMS:
        torch.manual_seed(0)  # same random VGG, same sampled positions
        loss = make_loss(space, distance_form=form)
        torch.manual_seed(1)
        out[form] = loss(fused, vi=vi, ir=ir, ir_mask=ir_mask, vi_mask=vi_mask)
    for term in (*TERMS, "contrast"):
        assert torch.isfinite(out["paper"][term]) and out["paper"][term] >= 0
    # Same anchors, samples and network: the forms differ in how they combine the same distances.
    assert not torch.allclose(out["code"]["background"], out["paper"]["background"])
    assert not torch.allclose(out["code"]["unique_ir"], out["paper"]["unique_ir"])
    with pytest.raises(ValueError, match="loss.distance_form"):
        make_loss(distance_form="eq13")


def test_batch_must_split_into_groups(occo_loss):
    x = torch.rand(10, 1, H, H)
    with pytest.raises(ValueError, match="4 groups"):
        occo_loss(x, vi=x, ir=x, ir_mask=x, vi_mask=x)
