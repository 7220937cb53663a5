"""occo.nn.fifn.tiling: tiled inference equals one whole-image pass of the fusion network."""

from __future__ import annotations

import pytest
import torch

from occo.config import Arch
from occo.nn import build_model, fuse_y
from occo.nn.fifn.tiling import bytes_per_pixel, core_side, fuse_y_tiled, halo, tiles

CPU = torch.device("cpu")
THREE = {"widths": [4, 8, 8], "heads": [1, 2, 1]}  # three scales: a 36-pixel halo keeps the test small


def _model(cfg: Arch) -> torch.nn.Module:
    """A float64 network: tiles and one pass then agree to ~1e-13, with no float32 rounding to allow for
    (in float32 the one pass itself strays up to 2e-4 from the float64 result for some weights)."""
    model = build_model(cfg, seed=1)
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():  # running statistics away from 0/1, so BatchNorm in eval mode is not the identity
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.running_mean.uniform_(-0.2, 0.2, generator=gen)
                module.running_var.uniform_(0.5, 2.0, generator=gen)
    return model.double().eval()


@pytest.mark.parametrize(
    "arch",
    [
        {},
        {"spatial_gate": "softmax", "token_norm": "batch"},  # the softmax gate also normalises over the image
        {"cross_attention": False, "cross_channel": False},
        {"spatial_enhancement": False},
        {"attention_routing": "paper"},
    ],
)
def test_tiles_equal_one_pass(arch):
    cfg = Arch(**THREE, **arch)
    model = _model(cfg)
    gen = torch.Generator().manual_seed(0)
    ir, vi = torch.rand(2, 1, 1, 233, 157, generator=gen, dtype=torch.float64)  # odd sizes: reflect padding
    assert 233 > 64 + 2 * halo(cfg)  # some windows lie strictly inside the image
    want = fuse_y(model, ir=ir, vi=vi)
    got = fuse_y_tiled(model, ir=ir, vi=vi, core=64, device=CPU)
    assert got.shape == want.shape
    error = (got - want).abs().max().item()
    assert error < 1e-9, error  # a halo of 28 instead of 36 gives 1e-7, of 16 gives 4e-4
    assert model.training is False


def test_tiles_equal_one_pass_at_the_default_depth():
    """Four scales as the default network (narrow widths keep it quick): an 80-pixel halo."""
    cfg = Arch(widths=[4, 8, 8, 8], heads=[1, 2, 1, 1])
    model = _model(cfg)
    ir, vi = torch.rand(2, 1, 1, 361, 203, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert 361 > 64 + 2 * halo(cfg) == 224
    error = (fuse_y_tiled(model, ir=ir, vi=vi, core=64, device=CPU) - fuse_y(model, ir=ir, vi=vi)).abs().max().item()
    assert error < 1e-9, error  # a halo of 56 gives 5e-9, of 48 gives 7e-8


def test_tiles_cover_the_image_once():
    covered = torch.zeros(101, 67, dtype=torch.int32)
    for t in tiles(101, 67, 16, 8):
        covered[t.y0 : t.y1, t.x0 : t.x1] += 1
        assert t.wy0 <= t.y0 and t.wy1 >= t.y1 and t.wy0 % 8 == 0 and t.wx0 % 8 == 0
    assert (covered == 1).all()


def test_core_side_fits_the_budget():
    cfg = Arch()
    margin = halo(cfg)
    budget = (128 + 2 * margin) ** 2 * bytes_per_pixel(cfg)
    assert core_side(cfg, budget) == 128
    assert core_side(cfg, budget - 1) == 120
    with pytest.raises(ValueError, match="too small"):
        core_side(cfg, (2 * margin) ** 2 * bytes_per_pixel(cfg))


def test_what_cannot_be_tiled():
    ir = torch.rand(1, 1, 64, 64, dtype=torch.float64)
    with pytest.raises(ValueError, match="compat='fixed'"):
        fuse_y_tiled(_model(Arch(**THREE, compat="official")), ir=ir, vi=ir, core=32, device=CPU)
    with pytest.raises(ValueError, match="multiple of 4"):
        fuse_y_tiled(_model(Arch(**THREE)), ir=ir, vi=ir, core=30, device=CPU)
