"""Random-init RFN-Nest checkpoints in the layout of the authors' published files, from a seed (our recipe).

Two plain state dicts as the authors' scripts save ``model.state_dict()`` (no wrapper dict, no ``module.``
prefix, float32 CPU tensors): the NestFuse grey auto-encoder (44 tensors) and the RFN (48 tensors), keys and
shapes as their ``net.py`` builds them. Values come from a 32-bit integer hash of (seed, element index) in
exact int64 arithmetic, mapped to float64 and rounded once to float32, so every platform and torch version
writes the same tensors:

    u = (h >> 8) * 2**-24,  h = hash32(hash32(n + seed * 0x9E3779B9 mod 2**32))   ('lowbias32' mixer)
    weight = (2u - 1) * sqrt(6 / fan_in),  bias = (2u - 1) * 0.1,  n = running element index over the file
    the output conv's weight in absolute value (keeps the ReLU'd output positive); the RFN file uses seed + 1000003
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict

import torch

NB_FILTER = (64, 112, 160, 208)
RFN_SALT = 1_000_003
MASK32 = 0xFFFFFFFF


def _conv(prefix: str, c_in: int, c_out: int, k: int) -> list[tuple[str, tuple[int, ...]]]:
    return [(f"{prefix}.conv2d.weight", (c_out, c_in, k, k)), (f"{prefix}.conv2d.bias", (c_out,))]


def _block(prefix: str, c_in: int, c_out: int) -> list[tuple[str, tuple[int, ...]]]:
    return _conv(f"{prefix}.denseblock.0", c_in, c_in // 2, 3) + _conv(f"{prefix}.denseblock.1", c_in // 2, c_out, 1)


def autoencoder_layout(nb=NB_FILTER) -> list[tuple[str, tuple[int, ...]]]:
    """Keys and shapes of the authors' NestFuse auto-encoder file, in their order."""
    keys = _conv("conv0", 1, 16, 1)
    for k, (c_in, c_out) in enumerate(zip((16, *nb[:3]), nb), start=1):
        keys += _block(f"DB{k}_0", c_in, c_out)
    for name, c_in, c_out in (
        ("DB1_1", nb[0] + nb[1], nb[0]),
        ("DB2_1", nb[1] + nb[2], nb[1]),
        ("DB3_1", nb[2] + nb[3], nb[2]),
        ("DB1_2", nb[0] * 2 + nb[1], nb[0]),
        ("DB2_2", nb[1] * 2 + nb[2], nb[1]),
        ("DB1_3", nb[0] * 3 + nb[1], nb[0]),
    ):
        keys += _block(name, c_in, c_out)
    return keys + _conv("conv_out", nb[0], 1, 1)


def rfn_layout(nb=NB_FILTER) -> list[tuple[str, tuple[int, ...]]]:
    """Keys and shapes of the authors' RFN file, in their order."""
    keys = []
    for m, c in enumerate(nb, start=1):
        p = f"fusion_block{m}"
        keys += _conv(f"{p}.conv_fusion", 2 * c, c, 3) + _conv(f"{p}.conv_ir", c, c, 3) + _conv(f"{p}.conv_vi", c, c, 3)
        keys += _conv(f"{p}.bottelblock.0", 2 * c, c, 1) + _conv(f"{p}.bottelblock.1", c, c, 3)
        keys += _conv(f"{p}.bottelblock.2", c, c, 3)
    return keys


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """(x * c) mod 2**32 for int64 x in [0, 2**32), without int64 overflow."""
    return ((x * (c & 0xFFFF)) + (((x * (c >> 16)) & 0xFFFF) << 16)) & MASK32


def hash32(x: torch.Tensor) -> torch.Tensor:
    x = x & MASK32
    x = _mul32(x ^ (x >> 16), 0x7FEB352D)
    x = _mul32(x ^ (x >> 15), 0x846CA68B)
    return x ^ (x >> 16)


def make_state(layout: list[tuple[str, tuple[int, ...]]], seed: int) -> OrderedDict[str, torch.Tensor]:
    state: OrderedDict[str, torch.Tensor] = OrderedDict()
    offset = 0
    for name, shape in layout:
        count = math.prod(shape)
        n = torch.arange(offset, offset + count, dtype=torch.int64)
        u = (hash32(hash32(n + (seed * 0x9E3779B9) % (1 << 32))) >> 8).to(torch.float64).mul(2.0**-24).reshape(shape)
        offset += count
        if name.endswith(".weight"):
            t = (2 * u - 1) * math.sqrt(6.0 / (shape[1] * shape[2] * shape[3]))
            t = t.abs() if name == "conv_out.conv2d.weight" else t
        else:
            t = (2 * u - 1) * 0.1
        state[name] = t.to(torch.float32).contiguous()
    return state


def make_pair(seed: int) -> tuple[OrderedDict, OrderedDict]:
    """(auto-encoder state, RFN state) of ``seed``."""
    return make_state(autoencoder_layout(), seed), make_state(rfn_layout(), seed + RFN_SALT)


def tensor_digest(state: OrderedDict) -> str:
    """sha256 over (key, shape, float32 little-endian bytes) in key order: independent of the file format."""
    h = hashlib.sha256()
    for k, v in state.items():
        h.update(k.encode())
        h.update(str(tuple(v.shape)).encode())
        h.update(v.contiguous().numpy().astype("<f4").tobytes())
    return h.hexdigest()
