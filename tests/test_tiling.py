"""occo.tiling: tiled inference equals one whole-image pass of the fusion network."""

from __future__ import annotations

import pytest
import torch

from occo.nn import ArchConfig, build_model, fuse_y
from occo.tiling import bytes_per_pixel, core_side, fuse_y_tiled, halo, tiles

CPU = torch.device("cpu")
THREE = {"widths": (4, 8, 8), "heads": (1, 2, 1)}  # three scales: a 48-pixel halo keeps the test small


def _model(cfg: ArchConfig) -> torch.nn.Module:
    model = build_model(cfg, seed=1)
    with torch.no_grad():  # running statistics away from 0/1, so BatchNorm in eval mode is not the identity
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.mark.parametrize(
    "arch",
    [
        {},
        {"spatial_gate": "softmax", "token_norm": "batch"},  # the softmax gate also normalises over the image
        {"cross_attention": False, "cross_channel": False},
        {"spatial_enhancement": False},
    ],
)
def test_tiles_equal_one_pass(arch):
    cfg = ArchConfig(**THREE, **arch)
    model = _model(cfg)
    gen = torch.Generator().manual_seed(0)
    ir, vi = torch.rand(2, 1, 1, 233, 157, generator=gen)  # odd sizes: the decoder's reflect padding
    assert 233 > 64 + 2 * halo(cfg)  # some windows lie strictly inside the image
    want = fuse_y(model, ir, vi)
    got = fuse_y_tiled(model, ir, vi, core=64, device=CPU)
    assert got.shape == want.shape
    # Float rounding differs with the window sizes and thread counts: 1e-6 to 3e-6 seen here, and once over
    # 1e-5. A halo of 16 instead of 44 gives 4e-4; 1 grey level is 4e-3.
    error = (got - want).abs().max().item()
    assert error < 1e-4, error
    assert model.training is False


def test_tiles_cover_the_image_once():
    covered = torch.zeros(101, 67, dtype=torch.int32)
    for t in tiles(101, 67, 16, 8):
        covered[t.y0 : t.y1, t.x0 : t.x1] += 1
        assert t.wy0 <= t.y0 and t.wy1 >= t.y1 and t.wy0 % 8 == 0 and t.wx0 % 8 == 0
    assert (covered == 1).all()


def test_core_side_fits_the_budget():
    cfg = ArchConfig()
    margin = halo(cfg)
    budget = (128 + 2 * margin) ** 2 * bytes_per_pixel(cfg)
    assert core_side(cfg, budget) == 128
    assert core_side(cfg, budget - 1) == 120
    with pytest.raises(ValueError, match="too small"):
        core_side(cfg, (2 * margin) ** 2 * bytes_per_pixel(cfg))


def test_what_cannot_be_tiled():
    ir = torch.rand(1, 1, 64, 64)
    with pytest.raises(ValueError, match="compat='fixed'"):
        fuse_y_tiled(_model(ArchConfig(**THREE, compat="official")), ir, ir, core=32, device=CPU)
    with pytest.raises(ValueError, match="multiple of 4"):
        fuse_y_tiled(_model(ArchConfig(**THREE)), ir, ir, core=30, device=CPU)
