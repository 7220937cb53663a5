"""Network configuration (params.yaml section ``arch``) and the builder that turns it into a model."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any

import torch
from torch import nn

from occo.nn.fifn.blocks import ATTENTION_ROUTINGS, GATES, SPATIAL_ENHANCEMENTS, TOKEN_NORMS
from occo.nn.fifn.model import FIFN, INFERENCE_RULES


@dataclass(frozen=True)
class ArchConfig:
    """Everything needed to rebuild a network; saved inside every checkpoint.

    compat: "fixed" (default: bugs of the public code fixed) or "official" (its quirks reproduced,
        so the released checkpoint gives the public test script's images). docs/fidelity.md lists them.
    spatial_enhancement, cross_channel, cross_attention: the paper's ablation switches (§4.4.2);
        False leaves the module out of the network.
    widths, heads: channels and attention heads of the four scales.
    spatial_gate: Eq. 2 gate, "sigmoid" (public code) or "softmax" over positions (the paper's text).
    token_norm: Eq. 3 norm, "layer" (public code) or "batch" (the paper's text).
    network: name of the architecture in ``ARCHITECTURES``.
    attention_routing: "code" (public code: softmax(Q_vi K_ir) V_ir joins the visible stream) or
        "paper" (§3.1: it joins the infrared stream); same weights either way. Checkpoints written
        before this setting existed have no such entry and load as "code".
    """

    compat: str = "fixed"
    spatial_enhancement: bool = True
    cross_channel: bool = True
    cross_attention: bool = True
    widths: tuple[int, ...] = (32, 64, 112, 160)
    heads: tuple[int, ...] = (4, 4, 4, 1)
    spatial_gate: str = "sigmoid"
    token_norm: str = "layer"
    network: str = "fifn"
    attention_routing: str = "code"

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", _counts("widths", self.widths))
        object.__setattr__(self, "heads", _counts("heads", self.heads))
        for name, allowed in (
            ("compat", SPATIAL_ENHANCEMENTS.keys() & INFERENCE_RULES.keys()),
            ("spatial_gate", GATES.keys()),
            ("token_norm", TOKEN_NORMS.keys()),
            ("network", ARCHITECTURES.keys()),
            ("attention_routing", ATTENTION_ROUTINGS.keys()),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"arch.{name}={getattr(self, name)!r}: expected one of {sorted(allowed)}")
        if len(self.widths) < 2 or len(self.widths) != len(self.heads):
            raise ValueError(f"arch.widths {self.widths}, arch.heads {self.heads}: need 2+ widths, one head count each")
        if any(w % h for w, h in zip(self.widths, self.heads)):
            raise ValueError(f"arch.widths {self.widths} must be divisible by arch.heads {self.heads}")
        official = ("sigmoid", "layer", "code")
        if self.compat == "official" and (self.spatial_gate, self.token_norm, self.attention_routing) != official:
            raise ValueError(
                'arch.compat="official" runs the public code: spatial_gate="sigmoid", token_norm="layer", '
                'attention_routing="code"'
            )

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ArchConfig:
        """From params.yaml's ``arch`` section or a checkpoint's ``arch`` entry; unknown keys are an error."""
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown arch setting(s) {sorted(unknown)}; known: {[f.name for f in fields(cls)]}")
        return cls(**values)


def _counts(name: str, values: Any) -> tuple[int, ...]:
    """``arch.<name>`` as a tuple of positive integers; ValueError naming it otherwise."""
    if isinstance(values, (list, tuple)) and all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values
    ):
        return tuple(values)
    raise ValueError(f"arch.{name}={values!r}: expected a list of positive integers, one per scale")


ARCHITECTURES = MappingProxyType({"fifn": FIFN})


def build_model(cfg: ArchConfig, seed: int | None = None) -> nn.Module:
    """A freshly initialised network for ``cfg``; with ``seed``, initialised from that seed
    without touching the caller's global RNG state."""
    if seed is None:
        return ARCHITECTURES[cfg.network](cfg)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ARCHITECTURES[cfg.network](cfg)
