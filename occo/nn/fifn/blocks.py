"""Attention and enhancement modules of the Feature Interaction Fusion Block (FIFB, paper §3.1, Fig. 3).

One module per step of §3.1: Eq. 1 ``CrossChannelWeights`` (cross-channel weights), the cross
attention of the §3.1 text (unnumbered) ``CrossAttention``, Eq. 2 ``SpatialEnhancement`` (spatial
weights per modality), Eq. 3 ``ResidualMerge``, Eq. 4 ``ChannelEmbed``. Feature maps are
(B,C,H,W); the cross attention and Eq. 3 work token-wise on (B,H,W,C), which is a free view of a
channels_last map (``x.permute(0, 2, 3, 1)``). Every reshape is ``reshape``, never ``view``, so
either memory format works.

Variants are looked up by name in the read-only registries at the bottom (``GATES``,
``TOKEN_NORMS``, ``SPATIAL_ENHANCEMENTS``, ``ATTENTION_ROUTINGS``); the ``arch`` params
(``occo.config.Arch``) name them. Modules that take both modalities take them keyword-only (``ir=``, ``vi=``)
and return pairs in the order ``(vi, ir)``.
"""

from __future__ import annotations

from types import MappingProxyType

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def spatial_softmax(logits: Tensor) -> Tensor:
    """Softmax of a (B,1,H,W) map over its H*W positions (Eq. 2's spatial gate, our reading of its axis)."""
    return logits.flatten(1).softmax(-1).reshape(logits.shape)


class TokenBatchNorm(nn.BatchNorm2d):
    """BatchNorm over the channels of (B,H,W,C) tokens (Eq. 3's Ω)."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class CrossChannelWeights(nn.Module):
    """Eq. 1: (CW_vi, CW_ir) = sigmoid(MLP(Cat(MA(φ_vi), MA(φ_ir)))), then ϱ_m = CW_m * φ_m.

    Average and max pooling of the concatenated features [F_vi, F_ir] give a 4C vector per image;
    a two-layer MLP turns it into one weight per channel and modality, so each modality's channels
    are re-weighted with knowledge of the other's.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4 * dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, 2 * dim)

    def forward(self, *, ir: Tensor, vi: Tensor) -> tuple[Tensor, Tensor]:
        x = torch.cat((vi, ir), 1)
        stats = torch.cat((x.mean((2, 3)), x.amax((2, 3))), 1)  # B,4C: avg_vi avg_ir max_vi max_ir
        w = torch.sigmoid(self.fc2(F.relu(self.fc1(stats)))).unflatten(1, (2, vi.shape[1]))
        return vi * w[:, 0, :, None, None], ir * w[:, 1, :, None, None]


class SpatialWeights(nn.Module):
    """Eq. 2 for one modality: v = φ ⊙ gate(C1x1(R(C1x1(φ)))); the paper's gate: softmax, the code's: sigmoid."""

    def __init__(self, dim: int, gate: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(dim, dim, 1)
        self.conv2 = nn.Conv2d(dim, 1, 1)
        self.gate = GATES[gate]

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(self.conv2(F.relu(self.conv1(x))))


class SpatialEnhancement(nn.Module):
    """Eq. 2 for both modalities, each with its own weight map (compat="fixed")."""

    def __init__(self, dim: int, gate: str) -> None:
        super().__init__()
        self.vi = SpatialWeights(dim, gate)
        self.ir = SpatialWeights(dim, gate)

    def forward(self, *, ir: Tensor, vi: Tensor) -> tuple[Tensor, Tensor]:
        return self.vi(vi), self.ir(ir)


class SharedSpatialEnhancement(SpatialEnhancement):
    """Eq. 2 as the public code runs it (compat="official").

    The public code builds one spatial module per modality but applies the visible one to both.
    The infrared module still exists (its weights are in the released checkpoint) and is frozen,
    as it never receives a gradient there either.
    """

    def __init__(self, dim: int, gate: str) -> None:
        super().__init__(dim, gate)
        self.ir.requires_grad_(False)

    def forward(self, *, ir: Tensor, vi: Tensor) -> tuple[Tensor, Tensor]:
        return self.vi(vi), self.vi(ir)


class CrossAttention(nn.Module):
    """§3.1 cross attention (unnumbered): each modality's channel-enhanced tokens query the other's context.

    Tokens are projected (Linear + ReLU); per head, the context of a modality is the d x d matrix
    softmax_rows(K^T V / sqrt(d)) (softmax over the key-feature axis), and a query result is
    Q @ context with Q the querying modality's projected tokens (no separate query projection).
    This is a linear ("efficient") attention: its cost grows with H*W, not (H*W)^2; the paper
    writes softmax(Q K) V.

    ``routing`` says which stream each result joins (``forward`` returns ``(to_vi, to_ir)``):
    ``code``, the public code: Q_vi with the infrared context joins the visible stream; ``paper``:
    it joins the infrared stream (§3.1: φ_ir = softmax(Q_vi K_ir) V_ir), and Q_ir with the visible
    context joins the visible stream. Both use the same weights.
    """

    def __init__(self, dim: int, heads: int, routing: str = "code") -> None:
        super().__init__()
        self.heads = heads
        self.routing = routing
        self._to_infrared = ATTENTION_ROUTINGS[routing]
        self.scale = (dim // heads) ** -0.5
        self.proj_vi = nn.Linear(dim, dim)
        self.proj_ir = nn.Linear(dim, dim)
        self.kv_vi = nn.Linear(dim, 2 * dim, bias=False)
        self.kv_ir = nn.Linear(dim, 2 * dim, bias=False)

    def split_heads(self, x: Tensor) -> Tensor:
        """(B,H,W,C) -> (B,heads,H*W,d)."""
        b, h, w, c = x.shape
        return x.reshape(b, h * w, self.heads, c // self.heads).transpose(1, 2)

    def context(self, x: Tensor, kv: nn.Linear) -> Tensor:
        """One modality's context per head: ``softmax_rows(K^T V / sqrt(d))`` of its projected tokens ``x``."""
        k, v = kv(x).chunk(2, dim=-1)
        return (self.split_heads(k).transpose(-2, -1) @ self.split_heads(v) * self.scale).softmax(dim=-2)

    def attend(self, q: Tensor, context: Tensor) -> Tensor:
        """Projected tokens ``q`` (B,H,W,C) querying a ``context``: ``Q @ context`` per head, back to (B,H,W,C)."""
        return (self.split_heads(q) @ context).transpose(1, 2).reshape(q.shape)

    def route(self, *, vi_queries_ir: Tensor, ir_queries_vi: Tensor) -> tuple[Tensor, Tensor]:
        """The two query results as ``(to_vi, to_ir)`` under this block's routing."""
        return (ir_queries_vi, vi_queries_ir) if self._to_infrared else (vi_queries_ir, ir_queries_vi)

    def forward(self, *, ir: Tensor, vi: Tensor) -> tuple[Tensor, Tensor]:
        vi, ir = F.relu(self.proj_vi(vi)), F.relu(self.proj_ir(ir))
        vi_queries_ir = self.attend(vi, self.context(ir, self.kv_ir))
        return self.route(vi_queries_ir=vi_queries_ir, ir_queries_vi=self.attend(ir, self.context(vi, self.kv_vi)))

    def extra_repr(self) -> str:
        return f"heads={self.heads}, routing={self.routing}"


class ResidualMerge(nn.Module):
    """Eq. 3 for one modality, token-wise: Norm(φ + W Cat(v, φ')), v of Eq. 2, φ' the cross attention.

    The paper's Eq. 3 adds Cat(φ', v) (2C channels) to φ (C) without saying how the widths meet, and
    its Ω is BatchNorm; the code projects with a Linear W (2C -> C) and normalises with LayerNorm.
    """

    def __init__(self, dim: int, norm: str) -> None:
        super().__init__()
        self.proj = nn.Linear(2 * dim, dim)
        self.norm = TOKEN_NORMS[norm](dim)

    def forward(self, x: Tensor, spatial: Tensor, channel: Tensor) -> Tensor:
        return self.norm(x + self.proj(torch.cat((spatial, channel), -1)))


class ChannelEmbed(nn.Module):
    """Eq. 4: the fused feature of one scale from X = [F'_vi, F'_ir] (2C -> C channels).

    BN(W_skip X + BN(conv1x1(relu(dwconv3x3(conv1x1(X)))))): the public code's form. The paper's
    Eq. 4, Ω(C1x1(R(DC3x3(C1x1(X)))) + C1x1(X)), has no BatchNorm inside the branch.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.skip = nn.Conv2d(2 * dim, dim, 1, bias=False)
        self.conv_in = nn.Conv2d(2 * dim, dim, 1)
        self.dwconv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.conv_out = nn.Conv2d(dim, dim, 1)
        self.bn_out = nn.BatchNorm2d(dim)
        self.norm = nn.BatchNorm2d(dim)

    def forward(self, *, ir: Tensor, vi: Tensor) -> Tensor:
        x = torch.cat((vi, ir), 1)
        y = self.bn_out(self.conv_out(F.relu(self.dwconv(self.conv_in(x)))))
        return self.norm(self.skip(x) + y)


GATES = MappingProxyType({"sigmoid": torch.sigmoid, "softmax": spatial_softmax})
TOKEN_NORMS = MappingProxyType({"layer": nn.LayerNorm, "batch": TokenBatchNorm})
SPATIAL_ENHANCEMENTS = MappingProxyType({"fixed": SpatialEnhancement, "official": SharedSpatialEnhancement})
ATTENTION_ROUTINGS = MappingProxyType({"code": False, "paper": True})
"""``arch.attention_routing`` -> whether Q_vi's result joins the infrared stream (see ``CrossAttention``)."""
