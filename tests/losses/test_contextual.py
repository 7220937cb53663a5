"""Contextual similarity (Eq. 9-12) and its variants on small random point sets."""

from __future__ import annotations

import math

import pytest
import torch

from occo.losses import VGG19Features
from occo.losses.contextual import (
    CX_VARIANTS,
    EPS,
    ContextualLoss,
    bounded_contextual_loss,
    cosine_distance,
    l2_distance,
    log_contextual_affinity,
    mechrez_contextual_loss,
    relative_distance,
    sample_points,
    squared_l2_distance,
)

MIN_LOSS = -math.log(1 + EPS)


def points(b: int = 2, n: int = 40, c: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, n, c, generator=torch.Generator().manual_seed(seed))


def variant_loss(name: str, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    spec = CX_VARIANTS[name]
    kwargs = {"omega3": 0.5} if spec.uses_omega3 else {}
    if spec.whole_map_distance:
        kwargs["e"] = l2_distance(x, y)
    return spec.fn(x, y, band_width=spec.band_width, **kwargs)


def test_registry_and_unknown_variant():
    assert set(CX_VARIANTS) == {"bounded", "literal", "mechrez"}
    with pytest.raises(ValueError, match="cx_variant"):
        ContextualLoss("cosine", omega3=0.5)


def test_distances_orientation_rows_over_anchor():
    x, y = points(n=5, seed=1), points(n=7, seed=2)
    assert squared_l2_distance(x, y).shape == (2, 5, 7)
    torch.testing.assert_close(squared_l2_distance(x, y), torch.cdist(x, y) ** 2, rtol=1e-4, atol=1e-4)
    mu = y.mean(dim=1, keepdim=True)
    xc, yc = x - mu, y - mu
    cos = (xc[:, :, None] * yc[:, None]).sum(-1) / (xc.norm(dim=-1)[:, :, None] * yc.norm(dim=-1)[:, None])
    torch.testing.assert_close(cosine_distance(x, y), 1 - cos, rtol=1e-5, atol=1e-5)


def test_affinity_rows_are_probabilities_with_relative_distance():
    d = torch.tensor([[[0.5, 1.0, 2.0], [0.0, 3.0, 3.0]]])
    torch.testing.assert_close(relative_distance(d), d / (d.amin(-1, keepdim=True) + EPS))
    cx = log_contextual_affinity(d, band_width=1.0).exp()
    torch.testing.assert_close(cx.sum(-1), torch.ones(1, 2))
    # Eq. 10 by hand for the first row: d̃ = (1, 2, 4) (up to ε), w = exp(1 - d̃).
    w = torch.tensor([1.0, math.exp(-1), math.exp(-3)])
    torch.testing.assert_close(cx[0, 0], w / w.sum(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["bounded", "literal", "mechrez"])
def test_identical_features_give_maximal_similarity(name):
    x = points()
    same = variant_loss(name, x, x)
    minimum = 0.0 if name == "literal" else MIN_LOSS  # Eq. 12 as printed has no ε: -log(1 + ω3·0)
    torch.testing.assert_close(same, torch.full((2,), minimum), rtol=0, atol=1e-6)
    if name != "literal":  # literal rewards distance, see test_literal_is_eq12_as_printed
        assert (variant_loss(name, x, points(seed=3)) > same + 0.1).all()


@pytest.mark.parametrize("name", ["bounded", "mechrez"])
def test_contextual_loss_ignores_point_order(name):
    x, y = points(seed=4), points(seed=5)
    perm = torch.randperm(y.shape[1], generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(variant_loss(name, x, y[:, perm]), variant_loss(name, x, y))


def test_bounded_omega3_zero_is_cosine_only():
    x, y = points(seed=6), points(seed=7)
    log_cx = log_contextual_affinity(cosine_distance(x, y), 1.0)
    expected = -torch.log(log_cx.exp().amax(dim=2).mean(dim=1) + EPS)
    torch.testing.assert_close(bounded_contextual_loss(x, y, omega3=0.0), expected)
    assert not torch.allclose(bounded_contextual_loss(x, y, omega3=0.5), expected)
    with pytest.raises(ValueError, match="omega3"):
        bounded_contextual_loss(x, y, omega3=1.5)


def test_mechrez_max_over_anchor_mean_over_target():
    x, y = points(n=30, seed=8), points(n=20, seed=9)
    cx = log_contextual_affinity(cosine_distance(x, y), 0.5).exp()
    expected = -torch.log(cx.amax(dim=1).mean(dim=1) + EPS)
    torch.testing.assert_close(mechrez_contextual_loss(x, y), expected)


def test_literal_is_eq12_as_printed():
    """-log(s + ω3·e), e the Euclidean distance of the whole maps, unbounded: moving away keeps s = 1 and
    lowers the loss below 0 without limit (the warning says so)."""
    with pytest.warns(UserWarning, match="unbounded Euclidean distance of the whole feature maps"):
        loss = ContextualLoss("literal", omega3=0.5)
    x = points(seed=10)
    x = x - x.mean(dim=1, keepdim=True)  # zero mean: scaling keeps every cosine, so s stays 1
    as_map = lambda p: p.transpose(1, 2).reshape(2, 8, 5, 8)  # noqa: E731  (40 points = 5 x 8)
    for scale in (3.0, 30.0):
        far = scale * x
        e = torch.linalg.vector_norm((x - far).flatten(1), dim=1)  # over every position and channel
        torch.testing.assert_close(loss(as_map(x), as_map(far)), -torch.log(1 + 0.5 * e))
    assert (loss(as_map(x), as_map(30.0 * x)) < loss(as_map(x), as_map(3.0 * x)) - 2).all()


def test_literal_gradient_is_alive_on_vgg_features_of_realistic_scale():
    """relu4_4 / relu5_4 of a VGG19: points ~0.1-1 apart here (random weights, torchvision's initialisation),
    tens apart with ImageNet weights (scaled x10 to that order below). Once the mean per-point distance
    exceeds 1, a distance clamped to [0, 1] is a constant with zero gradient; Eq. 12's whole-map e keeps one."""
    torch.manual_seed(0)
    vgg = VGG19Features(random_init=True)
    g = torch.Generator().manual_seed(1)
    fused = torch.rand(2, 1, 64, 64, generator=g, requires_grad=True)
    target = torch.rand(2, 1, 64, 64, generator=g)
    with pytest.warns(UserWarning):
        loss = ContextualLoss("literal", omega3=0.5)
    a, t = vgg(fused), vgg(target)
    for layer in ("relu4_4", "relu5_4"):
        fa, ft = 10 * a[layer], 10 * t[layer]
        clamped = (fa - ft).flatten(2).norm(dim=1).mean(dim=1).clamp(0.0, 1.0)  # the former e
        (old,) = torch.autograd.grad(clamped.sum(), fused, retain_graph=True)
        assert (clamped == 1).all() and old.abs().sum() == 0, layer
        assert (l2_distance(fa, ft) > 10).all(), layer
        (grad,) = torch.autograd.grad(loss(fa, ft).sum(), fused, retain_graph=True)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0, layer


@pytest.mark.parametrize("name", ["bounded", "literal", "mechrez"])
def test_similarity_runs_in_float32_under_bf16_autocast(name):
    x, y = points(seed=11).bfloat16(), points(seed=12).bfloat16()
    reference = variant_loss(name, x.float(), y.float())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = variant_loss(name, x, y)
        # Control: a plain matmul here is lowered to bf16 by autocast.
        assert (x.float() @ y.float().transpose(1, 2)).dtype == torch.bfloat16
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, reference, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["bounded", "literal", "mechrez"])
def test_zero_features_stay_finite(name):
    x = torch.zeros(2, 16, 4, requires_grad=True)
    value = variant_loss(name, x, torch.zeros(2, 16, 4))
    value.sum().backward()
    assert torch.isfinite(value).all() and torch.isfinite(x.grad).all()


def test_point_sampling_caps_positions_consistently():
    x = torch.randn(2, 3, 10, 10)
    xs, ys = sample_points(x, x.clone(), max_points=30)
    assert xs.shape == (2, 30, 3)
    torch.testing.assert_close(xs, ys)
    assert sample_points(x, x, max_points=None)[0].shape == (2, 100, 3)


def test_module_maps_to_points_and_checkpoints_gradients():
    x = torch.randn(2, 8, 6, 6, requires_grad=True)
    y = torch.randn(2, 8, 6, 6)
    value = ContextualLoss("bounded", omega3=0.5)(x, y)
    assert value.shape == (2,)
    torch.testing.assert_close(value, bounded_contextual_loss(x.flatten(2).mT, y.flatten(2).mT, omega3=0.5))
    value.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
