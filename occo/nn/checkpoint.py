"""Our checkpoints (network config embedded) and the converter for the public OCCO checkpoint (the public RFN-Nest
files: occo.nn.rfn_nest.published).

Our format: ``{"arch": <the arch params>, "state_dict": {name: tensor}, **extra}`` holding only
tensors and plain containers, so ``torch.load(path, weights_only=True)`` reads it. The ``arch`` entry is
``occo.config.Arch`` as plain data (``as_dict``); ``arch_from_checkpoint`` reads it back.

The public ``occo.pth`` is ``{"state_dict": ..., "meta": ..., "optimizer": ...}`` with the
attribute names of the public ``models/net.py``; ``official_key`` maps each of its keys to ours:

    v{k}.Conv_BN_ReLU_2.{0,1,3,4}.*        -> encoder_vi.{k-1}.{conv1,bn1,conv2,bn2}.*
    i{k}.Conv_BN_ReLU_2.{0,1,3,4}.*        -> encoder_ir.{k-1}.{conv1,bn1,conv2,bn2}.*
    fusion{k}.<part>.*                      -> fuse.{k-1}.<FUSION_PARTS[part]>.*
    up_concat{k}.{conv1,conv2}.*            -> decoder.{3-k}.{conv1,conv2}.*
    final.*                                 -> head.*

("v" is the visible encoder and "i" the infrared one: the public forward is ``net(vi_y, ir_y)``.)
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from occo.config import Arch, ParamsError, as_dict, validate_params
from occo.data.io import CheckpointError, read_checkpoint, save_torch
from occo.nn.fifn.model import build_model
from occo.nn.networks import build_network

ENCODER_LAYERS = {"0": "conv1", "1": "bn1", "3": "conv2", "4": "bn2"}
FUSION_PARTS = {
    "channel_weight.mlp.0": "channel.fc1",
    "channel_weight.mlp.2": "channel.fc2",
    "space_weight1.mlp.0": "spatial.vi.conv1",
    "space_weight1.mlp.2": "spatial.vi.conv2",
    "space_weight2.mlp.0": "spatial.ir.conv1",
    "space_weight2.mlp.2": "spatial.ir.conv2",
    "cross.channel_proj3": "cross.proj_vi",
    "cross.channel_proj4": "cross.proj_ir",
    "cross.cross_attn.kv1": "cross.kv_vi",
    "cross.cross_attn.kv2": "cross.kv_ir",
    "cross.end_proj1": "merge_vi.proj",
    "cross.end_proj2": "merge_ir.proj",
    "cross.norm1": "merge_vi.norm",
    "cross.norm2": "merge_ir.norm",
    "channel_emb.residual": "embed.skip",
    "channel_emb.channel_embed.0": "embed.conv_in",
    "channel_emb.channel_embed.1": "embed.dwconv",
    "channel_emb.channel_embed.3": "embed.conv_out",
    "channel_emb.channel_embed.4": "embed.bn_out",
    "channel_emb.norm": "embed.norm",
}
_ENCODER = re.compile(r"([vi])(\d+)\.Conv_BN_ReLU_2\.(\d)\.(\w+)")
_FUSION = re.compile(r"fusion(\d+)\.(.+)\.(\w+)")
_DECODER = re.compile(r"up_concat(\d+)\.(conv[12])\.(\w+)")
_HEAD = re.compile(r"final\.(\w+)")


def official_key(key: str) -> str | None:
    """Our state_dict name for a key of the public checkpoint (``module.`` already stripped); None if unknown."""
    if m := _ENCODER.fullmatch(key):
        branch, stage, layer, param = m.groups()
        if layer in ENCODER_LAYERS:
            return f"encoder_{'vi' if branch == 'v' else 'ir'}.{int(stage) - 1}.{ENCODER_LAYERS[layer]}.{param}"
    elif m := _FUSION.fullmatch(key):
        scale, part, param = m.groups()
        if part in FUSION_PARTS:
            return f"fuse.{int(scale) - 1}.{FUSION_PARTS[part]}.{param}"
    elif m := _DECODER.fullmatch(key):
        level, conv, param = m.groups()
        return f"decoder.{3 - int(level)}.{conv}.{param}"
    elif m := _HEAD.fullmatch(key):
        return f"head.{m.group(1)}"
    return None


def _read(path: str | Path, remedy: str) -> dict[str, Any]:
    """A checkpoint with a ``state_dict`` entry (ours or the public one)."""
    ckpt = read_checkpoint(path, remedy=remedy)
    if not isinstance(ckpt.get("state_dict"), dict):
        raise CheckpointError(f"{path} is not a checkpoint: expected a dict with a 'state_dict' entry; {remedy}")
    return ckpt


def is_finite(tensors: list[Tensor]) -> bool:
    """True when no element of the float ``tensors`` is NaN or ±inf; one host transfer per device."""
    flags: dict[torch.device, list[Tensor]] = {}
    for t in tensors:
        if t.is_floating_point():
            flags.setdefault(t.device, []).append(torch.isfinite(t.detach()).all())
    return all(bool(torch.stack(found).all()) for found in flags.values())


def _tensors(value: Any) -> list[Tensor]:
    if isinstance(value, Tensor):
        return [value]
    items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else ()
    return [t for item in items for t in _tensors(item)]


def _check_plain(value: Any, where: str) -> None:
    """Only tensors and plain containers may go into a checkpoint (weights_only loading)."""
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"checkpoint entry {where}: key {k!r} is not a str or int")
            _check_plain(v, f"{where}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
    elif not isinstance(value, (Tensor, str, int, float, bool, type(None))):
        kind = type(value).__name__
        raise TypeError(f"checkpoint entry {where} is a {kind}; use tensors, numbers, strings, lists, dicts")


def save_checkpoint(path: str | Path, model: nn.Module, arch: Arch, **extra: Any) -> Path:
    """Write ``{"arch": as_dict(arch), "state_dict": ..., **extra}`` atomically (temp file + rename; the file's
    mode follows the umask, like every other output). A state with NaN/inf in any float tensor (weights,
    buffers, optimiser state) is refused with CheckpointError and the previous file is kept."""
    net = getattr(model, "_orig_mod", model)  # unwrap torch.compile
    if getattr(net, "arch", arch) != arch:
        raise ValueError(f"model was built from {net.arch}, not {arch}")
    if {"arch", "state_dict"} & extra.keys():
        raise ValueError("'arch' and 'state_dict' are reserved checkpoint entries")
    _check_plain(extra, "extra")
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    payload = {"arch": as_dict(arch), "state_dict": state, **extra}
    path = Path(path)
    if not is_finite(_tensors(payload)):
        raise CheckpointError(f"refusing to write {path}: the state holds NaN or inf values; the previous file is kept")
    return save_torch(path, payload)


LEGACY_NETWORK = "fifn"
"""The value of the ``network`` entry that checkpoints with tuple widths/heads hold (FIFN, the only network)."""


def arch_from_checkpoint(entry: Mapping[str, Any], path: str | Path) -> Arch:
    """A checkpoint's ``arch`` entry as ``Arch``, validated as the params are (CheckpointError naming the key).

    The entry may also hold ``widths``/``heads`` as tuples and ``network: fifn`` (a dataclass's ``asdict``),
    and may lack ``attention_routing`` (then ``code``, the public code's routing).
    """
    if entry.get("network", LEGACY_NETWORK) != LEGACY_NETWORK:
        raise CheckpointError(f"{path} holds a {entry['network']!r} network; occo builds {LEGACY_NETWORK} only")
    values = {key: list(v) if isinstance(v, tuple) else v for key, v in entry.items() if key != "network"}
    try:
        return validate_params({"arch": values}, str(path)).arch
    except ParamsError as err:
        raise CheckpointError(f"cannot load {'; '.join(err.problems)}") from None


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, Arch]:
    """Rebuild the network of a checkpoint of ours (its arch embedded, ``arch.name`` choosing the network);
    returned in eval mode on ``device``."""
    ckpt = _read(path, "re-run the train stage, or point to a complete occo checkpoint")
    if not isinstance(ckpt.get("arch"), dict):
        raise CheckpointError(
            f"{path} has no 'arch' entry: not an occo checkpoint (convert the public one with convert_checkpoint)"
        )
    arch = arch_from_checkpoint(ckpt["arch"], path)
    model = build_network(arch)
    state = ckpt["state_dict"]
    if problems := fit_problems(state, model.state_dict()):
        raise CheckpointError(
            f"cannot load {path}: its weights do not fit its arch config ({problems}): a checkpoint of another "
            "network or edited by hand; re-run the train stage or convert the public checkpoint"
        )
    if not is_finite(list(state.values())):
        bad = [k for k, v in state.items() if not is_finite([v])]
        raise CheckpointError(
            f"{path} holds NaN/inf weights ({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}): it would fuse "
            "into blank images; use another checkpoint (a diverged run: lower train.lr and train again)"
        )
    model.load_state_dict(state)
    return model.to(device).eval(), arch


def fit_problems(state: Mapping[str, Any], expected: Mapping[str, Tensor], shown: int = 2) -> str | None:
    """Why ``state`` does not load into a model whose state dict is ``expected``, in one line (counts and the
    first ``shown`` keys of each kind: missing, unexpected, wrong shape), or None when it does."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shape = {k: tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__ for k, v in state.items()}
    wrong = [f"{k} {shape[k]}, want {tuple(v.shape)}" for k, v in expected.items() if shape.get(k, v.shape) != v.shape]
    kinds = (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
    parts = [
        f"{len(keys)} {label} ({'; '.join(keys[:shown])}{'; ...' if len(keys) > shown else ''})"
        for label, keys in kinds
        if keys
    ]
    return ", ".join(parts) or None


def convert_checkpoint(src: str | Path, dst: str | Path) -> Path:
    """Convert the public ``occo.pth`` to our format with ``compat="official"``; every key must map."""
    src = Path(src)
    ckpt = _read(src, "pass the authors' released occo.pth")
    if isinstance(ckpt.get("arch"), dict):
        raise CheckpointError(
            f"{src} is already an occo checkpoint (it embeds its 'arch' config): use it as is "
            f"(occo fuse --checkpoint {src}, or params fuse.checkpoint / fuse.extra_checkpoints); nothing to convert"
        )
    state = {k.removeprefix("module."): v for k, v in ckpt["state_dict"].items()}
    arch = Arch(compat="official")
    model = build_model(arch)
    expected = model.state_dict()
    names = {k: official_key(k) for k in state}
    unmapped = sorted(k for k, name in names.items() if name is None)
    mapped = {name: state[k] for k, name in names.items() if name is not None}
    missing = sorted(expected.keys() - mapped.keys())
    wrong = sorted(
        f"{k} {tuple(v.shape)} (want {tuple(expected[k].shape)})"
        for k, v in mapped.items()
        if k in expected and v.shape != expected[k].shape
    )
    found = (("unmapped public keys", unmapped), ("missing keys", missing), ("wrong shapes", wrong))
    problems = [f"{label}: {', '.join(keys)}" for label, keys in found if keys]
    if problems:
        raise CheckpointError(f"cannot convert {src}: " + "; ".join(problems))
    model.load_state_dict(mapped)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    return save_checkpoint(dst, model, arch, source={"file": src.name, "sha256": digest})
