import pydantic
import pytest
import torch

from occo.config import Arch, load_params
from occo.nn import FIFN, build_model, fuse_y, normalise_output
from occo.nn.fifn.blocks import CrossAttention, CrossChannelWeights, SpatialEnhancement, SpatialWeights
from support import REPO

SWITCHES = {
    "spatial_enhancement": ("spatial", (SpatialEnhancement, SpatialWeights)),
    "cross_channel": ("channel", (CrossChannelWeights,)),
    "cross_attention": ("cross", (CrossAttention,)),
}
CONFIGS = [
    Arch(compat=compat, **{switch: False for switch in off})
    for compat in ("fixed", "official")
    for off in ((), ("spatial_enhancement",), ("cross_channel",), ("cross_attention",), tuple(SWITCHES))
] + [Arch(spatial_gate="softmax", token_norm="batch", attention_routing="paper")]


def pair(*shape: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, generator=g), torch.rand(*shape, generator=g)


def images(*shape: int) -> dict[str, torch.Tensor]:
    """``pair`` as the network's keyword arguments, infrared first."""
    ir, vi = pair(*shape)
    return {"ir": ir, "vi": vi}


@pytest.mark.parametrize("compat", ["fixed", "official"])
def test_odd_size_keeps_shape(compat):
    model = build_model(Arch(compat=compat), seed=0)
    ir, vi = pair(1, 1, 37, 53)
    assert model(ir=ir, vi=vi).shape == (1, 1, 37, 53)
    fused = fuse_y(model, ir=ir, vi=vi)
    assert fused.shape == (1, 1, 37, 53)
    assert fused.min().item() == 0.0 and fused.max().item() == 1.0


def test_rejects_bad_inputs():
    model = build_model(Arch(), seed=0)
    with pytest.raises(ValueError, match="H,W >= 8"):
        model(**images(1, 1, 7, 32))
    with pytest.raises(ValueError, match="one shape"):
        model(ir=torch.rand(1, 1, 16, 16), vi=torch.rand(1, 1, 16, 17))
    with pytest.raises(TypeError):  # the modalities are keyword-only: a swapped call cannot be written silently
        model(*pair(1, 1, 16, 16))


@pytest.mark.parametrize("switch", list(SWITCHES))
def test_ablation_switch_removes_module(switch):
    attr, types = SWITCHES[switch]
    full = dict(build_model(Arch()).named_modules())
    ablated_model = build_model(Arch(**{switch: False}))
    ablated = dict(ablated_model.named_modules())
    removed = set(full) - set(ablated)
    assert set(ablated) < set(full)
    assert {name.split(".")[2] for name in removed} == {attr}
    assert {f"fuse.{k}.{attr}" for k in range(4)} <= removed
    assert not any(isinstance(m, types) for m in ablated.values())
    assert ablated_model(**images(2, 1, 16, 24)).shape == (2, 1, 16, 24)


@pytest.mark.parametrize(
    "cfg",
    CONFIGS,
    ids=lambda c: (
        f"{c.compat}-{c.spatial_enhancement:d}{c.cross_channel:d}"
        f"{c.cross_attention:d}-{c.spatial_gate}-{c.token_norm}-{c.attention_routing}"
    ),
)
def test_gradients_reach_every_trainable_parameter(cfg):
    model = build_model(cfg, seed=0).train()
    out = normalise_output(model(**images(2, 1, 16, 24)), per_image=False)
    (out * torch.linspace(0, 1, out.numel()).view_as(out)).sum().backward()
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert trainable
    no_grad = [n for n, p in trainable.items() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not no_grad


def test_paper_routing_sends_visible_queries_to_the_infrared_stream():
    # §3.1: φ_ir = softmax(Q_vi K_ir) V_ir feeds the infrared stream; the public code adds it to the
    # visible one. Same weights, the two results swap streams.
    code = CrossAttention(16, 4)
    paper = CrossAttention(16, 4, routing="paper")
    paper.load_state_dict(code.state_dict())
    vi, ir = pair(2, 5, 6, 16)
    to_vi, to_ir = code(ir=ir, vi=vi)
    # By hand: the visible tokens (projected) query the infrared context.
    q_vi = torch.relu(code.proj_vi(vi))
    k_ir, v_ir = code.kv_ir(torch.relu(code.proj_ir(ir))).chunk(2, dim=-1)
    heads = lambda t: t.reshape(2, 30, 4, 4).transpose(1, 2)  # noqa: E731  (B, heads, H·W, d)
    context = (heads(k_ir).transpose(-2, -1) @ heads(v_ir) * 4**-0.5).softmax(dim=-2)
    vi_queries_ir = (heads(q_vi) @ context).transpose(1, 2).reshape(2, 5, 6, 16)
    torch.testing.assert_close(to_vi, vi_queries_ir)
    paper_vi, paper_ir = paper(ir=ir, vi=vi)
    torch.testing.assert_close(paper_ir, vi_queries_ir)
    torch.testing.assert_close(paper_vi, to_ir)
    # Whole network: same weights, different fused image; without cross attention nothing to route.
    ir_y, vi_y = pair(1, 1, 16, 24)
    net_code = build_model(Arch(), seed=0)
    net_paper = build_model(Arch(attention_routing="paper"), seed=0)
    assert net_paper.state_dict().keys() == net_code.state_dict().keys()
    net_paper.load_state_dict(net_code.state_dict())
    assert (net_paper(ir=ir_y, vi=vi_y) - net_code(ir=ir_y, vi=vi_y)).abs().max() > 1e-4
    off = Arch(cross_attention=False)
    torch.testing.assert_close(
        build_model(Arch(cross_attention=False, attention_routing="paper"), seed=0)(ir=ir_y, vi=vi_y),
        build_model(off, seed=0)(ir=ir_y, vi=vi_y),
    )


def test_official_applies_visible_spatial_module_to_both():
    official = build_model(Arch(compat="official"), seed=0)
    fixed = build_model(Arch(compat="fixed"), seed=0)
    assert not any(p.requires_grad for p in official.fuse[0].spatial.ir.parameters())
    ir, vi = pair(1, 1, 16, 16)
    before = official(ir=ir, vi=vi), fixed(ir=ir, vi=vi)
    with torch.no_grad():
        for model in (official, fixed):
            for block in model.fuse:
                block.spatial.ir.conv2.bias.add_(3.0)
    torch.testing.assert_close(official(ir=ir, vi=vi), before[0], rtol=0, atol=0)
    assert (fixed(ir=ir, vi=vi) - before[1]).abs().max() > 1e-4


@pytest.mark.parametrize("compat", ["fixed", "official"])
def test_channels_last_matches_contiguous(compat):
    model = build_model(Arch(compat=compat), seed=0)
    ir, vi = pair(2, 1, 20, 28)
    expected = model(ir=ir, vi=vi)
    model = model.to(memory_format=torch.channels_last)
    got = model(ir=ir.to(memory_format=torch.channels_last), vi=vi.to(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    ir_cl = ir.contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(fuse_y(model, ir=ir_cl, vi=vi), fuse_y(model, ir=ir, vi=vi))


def test_official_inference_uses_per_image_statistics_and_restores_state():
    model = build_model(Arch(compat="official"), seed=0).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ir, vi = pair(2, 1, 16, 24)
    both = fuse_y(model, ir=ir, vi=vi)
    torch.testing.assert_close(both[1:], fuse_y(model, ir=ir[1:], vi=vi[1:]))
    assert not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    model.train()  # the public test script: train mode, one image per forward
    torch.testing.assert_close(both[:1], normalise_output(model(ir=ir[:1], vi=vi[:1]).detach(), per_image=True))


def test_fixed_inference_uses_running_statistics():
    model = build_model(Arch(), seed=0).train()
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if name.endswith("running_var"):
                buf.uniform_(0.5, 2.0)
    ir, vi = pair(2, 1, 16, 24)
    fused = fuse_y(model, ir=ir, vi=vi)
    assert model.training
    torch.testing.assert_close(fused, normalise_output(model.eval()(ir=ir, vi=vi).detach(), per_image=True))


def test_fused_output_is_deterministic_for_a_seed():
    state = torch.random.get_rng_state()
    a = fuse_y(build_model(Arch(), seed=7), **images(1, 1, 24, 24))
    b = fuse_y(build_model(Arch(), seed=7), **images(1, 1, 24, 24))
    c = fuse_y(build_model(Arch(), seed=8), **images(1, 1, 24, 24))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_normalise_output():
    x = torch.stack([torch.full((1, 2, 2), 3.0), torch.tensor([[[1.0, 2.0], [3.0, 5.0]]])])
    per_image = normalise_output(x, per_image=True)
    assert torch.equal(per_image[0], torch.zeros(1, 2, 2))  # constant image: 0, not NaN
    torch.testing.assert_close(per_image[1], torch.tensor([[[0.0, 0.25], [0.5, 1.0]]]))
    torch.testing.assert_close(normalise_output(x, per_image=False), (x - 1) / 4)


def test_config_validation_and_params_section():
    cfg = load_params(REPO / "params.yaml").arch
    model = build_model(cfg)
    assert isinstance(model, FIFN) and model.arch == cfg
    with pytest.raises(ValueError, match="compat"):
        Arch(compat="paper")
    with pytest.raises(ValueError, match="official"):
        Arch(compat="official", spatial_gate="softmax")
    with pytest.raises(ValueError, match="attention_routing"):
        Arch(compat="official", attention_routing="paper")
    with pytest.raises(ValueError, match="attention_routing"):
        Arch(attention_routing="swapped")
    assert cfg.attention_routing == "code"  # params.yaml keeps the public code's routing
    with pytest.raises(ValueError, match="divisible"):
        Arch(widths=[30, 64, 112, 160])
    with pytest.raises(ValueError, match="one entry per scale"):
        Arch(widths=[8, 16], heads=[1, 1, 1])
    with pytest.raises(ValueError, match="dropout"):
        Arch(dropout=0.1)
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        cfg.compat = "official"


def deterministic_weights(model: torch.nn.Module) -> torch.nn.Module:
    """Fill every parameter and buffer from a sine pattern: values independent of torch's RNG."""
    with torch.no_grad():
        for j, (name, t) in enumerate(model.state_dict().items()):
            if name.endswith("num_batches_tracked"):
                continue
            s = torch.sin(torch.arange(t.numel(), dtype=torch.float64) * 1.618 + j).view(t.shape)
            if name.endswith("running_var"):
                s = 1 + 0.5 * s**2
            elif name.endswith("running_mean"):
                s = 0.05 * s
            elif t.ndim >= 2:
                s = s * (3.0 / t[0].numel()) ** 0.5
            else:
                s = 1 + 0.1 * s if name.endswith("weight") else 0.1 * s
            t.copy_(s.float())
    return model


def test_official_matches_values_of_the_public_code():
    """Golden values computed by running the public models/net.py (class occo) and main.py's test rule
    (train-mode BatchNorm, per-image min-max) on the same weights, renamed to its key names."""
    model = deterministic_weights(build_model(Arch(compat="official")))
    yy, xx = torch.meshgrid(torch.arange(20.0), torch.arange(28.0), indexing="ij")  # odd sizes at 1/4, 1/8
    ir = (0.5 + 0.5 * torch.sin(0.3 * xx + 0.2 * yy)).view(1, 1, 20, 28)
    vi = (0.5 + 0.5 * torch.cos(0.25 * xx - 0.35 * yy)).view(1, 1, 20, 28)
    pixels = ([0, 3, 9, 12, 19, 19], [0, 17, 5, 27, 0, 27])
    per_image_stats = fuse_y(model, ir=ir, vi=vi)[0, 0][pixels]
    running_stats = normalise_output(model.eval()(ir=ir, vi=vi).detach(), per_image=True)[0, 0][pixels]
    golden = torch.tensor([0.55055, 0.54472, 0.56195, 0.36003, 0.56616, 0.52827])
    golden_eval = torch.tensor([0.33451, 0.5169, 0.92631, 0.40725, 0.45169, 0.46376])
    torch.testing.assert_close(per_image_stats, golden, rtol=0, atol=5e-4)
    torch.testing.assert_close(running_stats, golden_eval, rtol=0, atol=5e-4)
