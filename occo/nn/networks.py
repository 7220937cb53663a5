"""The fusion networks occo builds, one entry per ``arch.name`` (one package per network under occo/nn/).

Each entry says how to build the network from the ``arch`` params and how to fuse with it: the raw output
of its inference rule, the output rule that turns a raw image into a fused luminance in [0,1], the working
memory of one pass per pixel, tiled inference for images over the memory budget, and which parameters its
fusion stage trains. Every function here dispatches on ``model.arch.name``, so a checkpoint (which records
its ``arch``) fuses the way its network does.

    fifn      OCCO's Feature Interaction Fusion Network (occo/nn/fifn/, §3.1)
    rfn_nest  RFN-Nest: NestFuse auto-encoder + residual fusion network (occo/nn/rfn_nest/, §4.5)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import MappingProxyType

import torch
from torch import Tensor, nn

from occo.config import Arch
from occo.nn.fifn import model as fifn
from occo.nn.fifn import tiling as fifn_tiling
from occo.nn.rfn_nest import model as rfn_nest
from occo.nn.rfn_nest import tiling as rfn_nest_tiling


def _fifn_raw_tiled(
    model: fifn.FIFN, *, ir: Tensor, vi: Tensor, budget: int, device: torch.device, rule: str | None = None
) -> Tensor:
    arch = model.arch
    if (rule or arch.compat) != "fixed":
        raise ValueError(
            f"compat={rule or arch.compat!r} (the checkpoint's arch.compat or fuse.compat) normalises each image "
            "with its own whole-image statistics, which tiles cannot reproduce: raise the memory budget"
        )
    core = fifn_tiling.core_side(arch, budget)
    return fifn_tiling.raw_tiled(model, ir=ir, vi=vi, core=core, device=device)


def _fifn_raw(model: fifn.FIFN, *, ir: Tensor, vi: Tensor, rule: str | None = None) -> Tensor:
    with torch.no_grad():
        return fifn.INFERENCE_RULES[rule or model.arch.compat](model, ir=ir, vi=vi)


def _rfn_nest_raw(model: rfn_nest.RFNNest, *, ir: Tensor, vi: Tensor, rule: str | None = None) -> Tensor:
    """RFN-Nest has no BatchNorm: every inference rule is the same pass."""
    return rfn_nest.nest_infer(model, ir=ir, vi=vi)


def _rfn_nest_raw_tiled(
    model: rfn_nest.RFNNest, *, ir: Tensor, vi: Tensor, budget: int, device: torch.device, rule: str | None = None
) -> Tensor:
    core = rfn_nest_tiling.nest_core_side(model.arch, budget)
    return rfn_nest_tiling.nest_raw_tiled(model, ir=ir, vi=vi, core=core, device=device)


def _fifn_trained(model: nn.Module) -> Iterator[nn.Parameter]:
    return model.parameters()


def _rfn_nest_trained(model: nn.Module) -> Iterator[nn.Parameter]:
    return model.rfn.parameters()


@dataclass(frozen=True)
class Network:
    """One fusion network.

    ``build(arch)``: a freshly initialised network; ``raw(model, *, ir, vi, rule=None)``: the raw output of the
    inference rule ``rule`` (None: the checkpoint's ``arch.compat``), no gradients; ``finish(raw)``: the fused
    luminance in [0,1] of a raw (B,1,H,W) output, per image; ``bytes_per_pixel(arch)``: estimated working
    memory of one pass; ``raw_tiled(model, *, ir, vi, budget, device, rule=None)``: the raw output of a
    (1,1,H,W) pair computed in tiles that fit ``budget`` bytes (ValueError when the network or the rule cannot
    be tiled, or the budget fits no tile); ``trained(model)``: the parameters its fusion stage optimises.
    """

    build: Callable[[Arch], nn.Module]
    raw: Callable[..., Tensor]
    finish: Callable[[Tensor], Tensor]
    bytes_per_pixel: Callable[[Arch], int]
    raw_tiled: Callable[..., Tensor]
    trained: Callable[[nn.Module], Iterator[nn.Parameter]]


NETWORKS: MappingProxyType[str, Network] = MappingProxyType(
    {
        "fifn": Network(
            build=fifn.FIFN,
            raw=_fifn_raw,
            finish=lambda raw: fifn.normalise_output(raw, per_image=True),
            bytes_per_pixel=fifn_tiling.bytes_per_pixel,
            raw_tiled=_fifn_raw_tiled,
            trained=_fifn_trained,
        ),
        "rfn_nest": Network(
            build=rfn_nest.RFNNest,
            raw=_rfn_nest_raw,
            finish=rfn_nest.nest_output,
            bytes_per_pixel=rfn_nest_tiling.nest_bytes_per_pixel,
            raw_tiled=_rfn_nest_raw_tiled,
            trained=_rfn_nest_trained,
        ),
    }
)
"""``arch.name`` -> the network (occo.config.types.NetworkName copies the keys)."""


def network(arch: Arch) -> Network:
    """The registry entry of ``arch.name``."""
    return NETWORKS[arch.name]


def build_network(arch: Arch, seed: int | None = None) -> nn.Module:
    """A freshly initialised network for ``arch``; with ``seed``, initialised from that seed without touching the
    caller's global RNG state."""
    build = network(arch).build
    if seed is None:
        return build(arch)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build(arch)


def fuse_luminance(model: nn.Module, *, ir: Tensor, vi: Tensor, rule: str | None = None) -> Tensor:
    """Fused Y in [0,1] (B,1,H,W) of the luminances ``ir``, ``vi`` by the network's output rule and the inference
    rule ``rule`` (None: the checkpoint's own), per image; the model's mode and buffers are left as they were."""
    net = network(model.arch)
    return net.finish(net.raw(model, ir=ir, vi=vi, rule=rule))
