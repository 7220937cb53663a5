"""Total loss (Eq. 20): named terms, the omega combination, NaN/inf detection, construction from params."""

from __future__ import annotations

import logging

import pytest
import torch

from occo.config import Params, load_params, override
from occo.losses.contextual import ContextualLoss
from occo.losses.contrastive import ContextualContrastiveLoss
from occo.losses.masked import MaskedIntensityLoss
from occo.losses.total import NonFiniteLossError, OCCOLoss, build_loss, total_loss
from support import REPO

B, H = 12, 32
OMEGAS = {"omega1": 0.3, "omega2": 0.7, "omega3": 0.4, "omega4": 6.0, "omega5": 2.0, "omega6": 5.0}


def make_loss(**changes: object) -> OCCOLoss:
    """OCCOLoss from the default params with these changes and a random VGG19."""
    return OCCOLoss.from_config(override(Params(), {"train.vgg_random_init": True, **changes}))


@pytest.fixture(scope="module")
def loss() -> OCCOLoss:
    torch.manual_seed(0)
    return make_loss(**OMEGAS)


def batch(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    vi, ir = torch.rand(B, 1, H, H, generator=g), torch.rand(B, 1, H, H, generator=g)
    ir_mask = torch.zeros(B, 1, H, H)
    vi_mask = torch.zeros(B, 1, H, H)
    ir_mask[:, :, 4:20, 4:20] = 1
    vi_mask[:, :, 12:28, 10:30] = 1
    fused = (0.6 * ir + 0.4 * vi).requires_grad_()
    return {"fused": fused, "vi": vi, "ir": ir, "ir_mask": ir_mask, "vi_mask": vi_mask}


def test_named_terms_and_eq20_combination(loss):
    inputs = batch()
    out = loss(**inputs)
    assert list(out) == [
        "ssim", "intensity", "texture", "pixel",
        "unique_ir", "unique_vi", "shared_ir", "shared_vi", "background", "contrast", "total",
    ]  # fmt: skip
    o = OMEGAS
    pixel = out["ssim"] + o["omega4"] * out["intensity"] + o["omega5"] * out["texture"]
    contrast = (
        out["unique_ir"] + out["unique_vi"]
        + o["omega1"] * out["shared_vi"] + o["omega2"] * out["shared_ir"]
        + out["background"]
    )  # fmt: skip
    torch.testing.assert_close(out["pixel"], pixel)
    torch.testing.assert_close(out["contrast"], contrast)
    torch.testing.assert_close(out["total"], pixel + o["omega6"] * contrast)
    torch.testing.assert_close(total_loss(out["pixel"], out["contrast"], 5.0), out["total"])
    assert loss.contrast.contextual._fn.keywords["omega3"] == o["omega3"]
    out["total"].backward()
    grad = inputs["fused"].grad
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_skipped_terms_are_absent_and_the_total_stays_exact(loss):
    inputs = batch()
    inputs["vi_mask"] = torch.zeros_like(inputs["vi_mask"])  # no visible object: no shared, no visible-unique
    out = loss(**inputs)
    assert not {"unique_vi", "shared_ir", "shared_vi"} & set(out)
    torch.testing.assert_close(out["contrast"], out["unique_ir"] + out["background"])
    torch.testing.assert_close(out["total"], out["pixel"] + OMEGAS["omega6"] * out["contrast"])
    # Infrared object everywhere: no background left either, only unique_ir remains.
    inputs["ir_mask"] = torch.ones_like(inputs["ir_mask"])
    out = loss(**inputs)
    assert [t for t in out if t not in ("ssim", "intensity", "texture", "pixel")] == ["unique_ir", "contrast", "total"]
    torch.testing.assert_close(out["total"], out["pixel"] + OMEGAS["omega6"] * out["unique_ir"])


@pytest.mark.parametrize("name,value", [("fused", float("nan")), ("vi", float("inf")), ("ir_mask", float("nan"))])
def test_non_finite_inputs_raise_naming_them(loss, name, value):
    inputs = batch()
    inputs[name] = inputs[name].detach().clone()
    inputs[name][0, 0, 0, 0] = value
    with pytest.raises(NonFiniteLossError, match=f"inputs: {name}$"):
        loss(**inputs)


def test_non_finite_term_is_reported_by_name(monkeypatch):
    torch.manual_seed(0)
    model = make_loss(**OMEGAS, **{"ablation.feature_space": "model4"})
    monkeypatch.setattr(model.masked, "omega1", float("inf"))  # a term overflowing to inf
    with pytest.raises(NonFiniteLossError, match="non-finite loss terms: masked_intensity, total"):
        model(**batch())


def test_modalities_are_keyword_only(loss):
    inputs = batch()
    with pytest.raises(TypeError):  # (fused, vi, ir, ...) in some order: a swap cannot be written silently
        loss(*inputs.values())


def test_random_vgg_is_warned_about_once(caplog):
    """The loss holds two VGG19 networks (RGB and grey); the param is one, so is its warning."""
    cfg = override(load_params(REPO / "params.yaml"), {"train.vgg_random_init": True})
    with caplog.at_level(logging.WARNING):
        OCCOLoss.from_config(cfg)
    assert caplog.text.count("RANDOM weights (train.vgg_random_init: true)") == 1


def test_random_vgg_of_the_ccl_term_is_warned_about_too(caplog):
    """RFN-Nest with the ``ccl`` term builds L_CCL without OCCOLoss: its random VGG19 is said once all the same."""
    changes = {"arch.name": "rfn_nest", "loss.terms": ["rfn", "ccl"], "train.vgg_random_init": True}
    cfg = override(load_params(REPO / "params.yaml"), changes)
    with caplog.at_level(logging.WARNING):
        build_loss(cfg)
    assert caplog.text.count("RANDOM weights (train.vgg_random_init: true)") == 1


def test_from_config_reads_names_and_weights():
    cfg = load_params(REPO / "params.yaml")
    assert cfg.loss.distance_form == "code"
    cfg = override(
        cfg, {"train.vgg_random_init": True, "loss.cx_variant": "mechrez", "loss.distance_form": "paper", "omega4": 7}
    )
    built = OCCOLoss.from_config(cfg)
    assert isinstance(built.contrast, ContextualContrastiveLoss) and built.masked is None
    assert isinstance(built.contrast.contextual, ContextualLoss) and built.contrast.contextual.variant == "mechrez"
    assert not built.contrast.form.per_layer
    assert built.omega6 == cfg.omega6 and built.pixel.omega4 == 7.0
    model4 = OCCOLoss.from_config(override(cfg, {"ablation.feature_space": "model4"}))
    assert isinstance(model4.masked, MaskedIntensityLoss) and model4.contrast is None
    assert (model4.masked.omega1, model4.masked.omega2) == (cfg.omega1, cfg.omega2)
