"""occo.nn.rfn_nest: the network's shape, its output rule, tiled inference, and the registry entry."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from occo.config import Arch
from occo.nn import build_network, fuse_luminance, network
from occo.nn.rfn_nest import tiling
from occo.nn.rfn_nest.model import NestAutoEncoder, cell_names, nest_infer, nest_output, upsample_to
from occo.nn.split import quarters, raw_in_parts

NARROW = Arch(name="rfn_nest", nest_widths=[4, 6, 8, 8])
CPU = torch.device("cpu")


def _open_model(arch: Arch = NARROW) -> torch.nn.Module:
    """A float64 network whose ReLUs stay mostly open (positive biases), so a too-small halo shows."""
    model = build_network(arch, seed=1).double()
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 1:
                p.uniform_(0.05, 0.3, generator=torch.Generator().manual_seed(p.numel()))
    return model


def test_the_published_network_has_the_authors_tensors():
    model = build_network(Arch(name="rfn_nest"))
    state = model.state_dict()
    assert len(state) == 92 and sum(v.numel() for v in state.values()) == 2_732_761 + 4_791_488
    assert state["decoder.cells.1_3.spatial.weight"].shape == (152, 304, 3, 3)  # 3 x 64 + 112 in, half out
    assert state["rfn.3.bottleneck.0.weight"].shape == (208, 416, 1, 1)
    assert cell_names(4) == [(1, 1), (2, 1), (3, 1), (1, 2), (2, 2), (1, 3)]


def test_forward_returns_eq23_features_and_refuses_bad_shapes():
    model = build_network(NARROW, seed=0)
    ir, vi = torch.rand(2, 2, 1, 37, 29)
    raw, feats = model(ir=ir, vi=vi, features=True)
    assert raw.shape == (2, 1, 37, 29) and bool((raw >= 0).all())  # every conv ends in a ReLU
    assert [f.shape[1:] for f in feats["fused"]] == [(4, 37, 29), (6, 18, 14), (8, 9, 7), (8, 4, 3)]
    assert [f.shape for f in feats["ir"]] == [f.shape for f in feats["vi"]] == [f.shape for f in feats["fused"]]
    torch.testing.assert_close(model(ir=ir, vi=vi), raw)
    with pytest.raises(ValueError, match=r"H,W >= 16"):
        model(ir=ir[..., :15, :], vi=vi[..., :15, :])
    assert NestAutoEncoder(model)(ir).shape == ir.shape
    with pytest.raises(ValueError, match="arch.name rfn_nest"):
        network(NARROW).build(Arch())


def test_odd_sizes_repeat_the_last_row_as_reflection_would():
    """The authors pad the missing row/column of a nearest-x2 map by reflection: the same values as repeating it."""
    x = torch.rand(1, 3, 4, 5)
    like = torch.empty(1, 3, 9, 11)
    reflected = F.pad(F.interpolate(x, scale_factor=2), (0, 1, 0, 1), mode="reflect")
    assert torch.equal(upsample_to(x, like), reflected)


def test_output_rule_is_the_authors_min_max_with_truncation():
    raw = torch.tensor([[0.0, 100.0], [300.0, 1000.0]]).reshape(1, 1, 2, 2)
    levels = nest_output(raw) * 255
    torch.testing.assert_close(levels, torch.tensor([[0.0, 25.0], [76.0, 255.0]]).reshape(1, 1, 2, 2))
    small = (
        nest_output(torch.tensor([0.0, 100.0]).reshape(1, 1, 1, 2)) * 255
    )  # range < 256: the 1e-5 keeps the top at 254
    assert small.flatten().tolist() == [0.0, 254.0]
    assert nest_output(torch.full((2, 1, 3, 3), 7.0)).abs().max() == 0  # a flat image is black, not NaN


def test_tiles_equal_one_pass():
    model = _open_model()
    ir, vi = torch.rand(2, 1, 1, 261, 203, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert tiling.nest_halo(NARROW) == 56 and 261 > 48 + 2 * 56  # some windows lie strictly inside the image
    want = nest_infer(model, ir=ir, vi=vi)
    got = tiling.nest_raw_tiled(model, ir=ir, vi=vi, core=48, device=CPU)
    assert (got - want).abs().max() < 1e-12
    half = tiling.nest_halo  # a halo of 40 no longer covers the receptive field: the test can fail
    try:
        tiling.nest_halo = lambda arch: 40
        assert (tiling.nest_raw_tiled(model, ir=ir, vi=vi, core=48, device=CPU) - want).abs().max() > 1e-7
    finally:
        tiling.nest_halo = half


def test_tiled_fusion_through_the_registry_needs_a_budget_that_fits_a_tile():
    model = build_network(NARROW, seed=0)
    net = network(NARROW)
    ir, vi = torch.rand(2, 1, 1, 150, 170, generator=torch.Generator().manual_seed(3))
    budget = (8 + 2 * tiling.nest_halo(NARROW)) ** 2 * net.bytes_per_pixel(NARROW)
    tiled = net.finish(net.raw_tiled(model, ir=ir, vi=vi, budget=budget, device=CPU))
    assert (tiled - fuse_luminance(model, ir=ir, vi=vi)).abs().max() <= 1 / 255 + 1e-7
    with pytest.raises(ValueError, match="too small: one tile needs"):
        net.raw_tiled(model, ir=ir, vi=vi, budget=budget - 1, device=CPU)


def test_four_parts_overlap_by_five_and_average_there():
    parts = quarters(576, 768)
    assert [(r.start, r.stop, c.start, c.stop) for r, c in parts] == [
        (0, 291, 0, 387),
        (0, 291, 382, 768),
        (286, 576, 0, 387),
        (286, 576, 382, 768),
    ]
    ir, vi = torch.rand(2, 1, 1, 11, 13)
    seen = []

    def part_id(a, b):
        seen.append(a.shape[-2:])
        return torch.full_like(a, float(len(seen)))

    stitched = raw_in_parts(part_id, ir=ir, vi=vi)
    assert seen == [(8, 9)] * 4  # rows [0, h//2 + 3) and [h//2 - 2, h): 8 of 11; columns 9 of 13
    assert stitched[0, 0, 0, 0] == 1 and stitched[0, 0, -1, -1] == 4 and stitched[0, 0, 5, 0] == 2  # (1 + 3) / 2
    assert stitched[0, 0, 5, 5] == 2.5  # the central square: the mean of all four
