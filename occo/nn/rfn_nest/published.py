"""The authors' published RFN-Nest weights (github.com/hli1221/imagefusion-rfn-nest) in our network.

They publish two plain state dicts (``torch.save(model.state_dict())``, no ``module.`` prefix), each zipped in
their repository: the NestFuse grey auto-encoder (``models/nestfuse.zip`` holding ``nestfuse_gray_1e2.model``,
44 tensors) and the RFN (``models/rfn_twostage.zip`` holding ``Final_epoch_2_alpha_700_wir_6.0_wvi_3.0_ssim_vi
.model``, 48 tensors). Every parameter of theirs sits in a conv unit's ``conv2d``; ``authors_key`` maps each
name to ours:

    conv0.conv2d.*                          -> encoder.stem.*
    DB{k}_0.denseblock.{0,1}.conv2d.*       -> encoder.blocks.{k-1}.{spatial,project}.*
    DB{i}_{j}.denseblock.{0,1}.conv2d.*     -> decoder.cells.{i}_{j}.{spatial,project}.*     (j >= 1)
    conv_out.conv2d.*                       -> decoder.head.*
    fusion_block{m}.conv_fusion.conv2d.*    -> rfn.{m-1}.initial.*
    fusion_block{m}.conv_{ir,vi}.conv2d.*   -> rfn.{m-1}.{ir,vi}.*
    fusion_block{m}.bottelblock.{j}.conv2d.* -> rfn.{m-1}.bottleneck.{j}.*

A file is read as a ``.model`` file (either torch serialisation format) or from the published zip, where the
member is found by its file name.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

import torch
from torch import Tensor

from occo.config import Arch
from occo.config.sections import NEST_SCALES
from occo.data.io import CheckpointError, read_checkpoint, sha256_file
from occo.nn.checkpoint import save_checkpoint
from occo.nn.networks import build_network
from occo.nn.rfn_nest.model import RFNNest

AUTOENCODER_FILE = "nestfuse_gray_1e2.model"
RFN_FILE = "Final_epoch_2_alpha_700_wir_6.0_wvi_3.0_ssim_vi.model"
MAX_MEMBER_BYTES = 1 << 30
"""A zip member larger than this is refused before it is read (the published ones hold 11 and 19 MB)."""
BLOCK_PARTS = {"0": "spatial", "1": "project"}
RFN_PARTS = {"conv_fusion": "initial", "conv_ir": "ir", "conv_vi": "vi"}
_NEST = re.compile(r"DB(\d)_(\d)\.denseblock\.([01])\.conv2d\.(weight|bias)")
_UNIT = re.compile(r"(conv0|conv_out)\.conv2d\.(weight|bias)")
_RFN = re.compile(r"fusion_block(\d)\.(conv_fusion|conv_ir|conv_vi|bottelblock\.\d)\.conv2d\.(weight|bias)")


def authors_key(key: str) -> str | None:
    """Our state_dict name for a key of the authors' auto-encoder or RFN file; None if unknown."""
    if m := _NEST.fullmatch(key):
        scale, column, part, param = m.groups()
        where = f"encoder.blocks.{int(scale) - 1}" if column == "0" else f"decoder.cells.{scale}_{column}"
        return f"{where}.{BLOCK_PARTS[part]}.{param}"
    if m := _UNIT.fullmatch(key):
        return f"{'encoder.stem' if m.group(1) == 'conv0' else 'decoder.head'}.{m.group(2)}"
    if m := _RFN.fullmatch(key):
        block, unit, param = m.groups()
        part = RFN_PARTS.get(unit) or unit.replace("bottelblock", "bottleneck")
        return f"rfn.{int(block) - 1}.{part}.{param}"
    return None


def _torch_zip(names: list[str]) -> bool:
    """torch's own zip serialisation (a ``<name>/data.pkl`` record) rather than an archive of files."""
    return any(name.endswith("/data.pkl") or name == "data.pkl" for name in names)


def _from_archive(path: Path, member: str) -> Any:
    """``member`` (found by file name) of the zip archive ``path``, loaded as a torch file."""
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        found = [n for n in names if PurePosixPath(n).name == member]
        if not found:
            models = [n for n in names if n.endswith(".model")]
            raise CheckpointError(f"{path} holds no {member} (its .model files: {', '.join(models) or 'none'})")
        info = archive.getinfo(found[0])
        if info.file_size > MAX_MEMBER_BYTES:
            raise CheckpointError(
                f"{path}: {found[0]} unpacks to {info.file_size:,} bytes, too large for a .model file"
            )
        data = archive.read(found[0])
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # refused by weights_only, truncated or corrupt
        detail = " ".join(str(err).split())[:120] or type(err).__name__
        raise CheckpointError(f"{path}: {found[0]} is not a readable PyTorch state dict ({detail})") from err


def _archive_of_files(path: Path) -> bool:
    """A zip archive of files (the published zips), not torch's own zip serialisation."""
    if not (path.is_file() and zipfile.is_zipfile(path)):
        return False
    with zipfile.ZipFile(path) as archive:
        return not _torch_zip(archive.namelist())


def _load(path: Path, member: str) -> Any:
    """What ``path`` holds, as loaded: ``member`` of a published zip, else the file itself."""
    if _archive_of_files(path):
        return _from_archive(path, member)
    return read_checkpoint(path, remedy=f"pass the authors' {member} (or the zip it is published in)")


def _plain(state: Any, path: Path, member: str) -> dict[str, Tensor]:
    if not state or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()):
        raise CheckpointError(
            f"{path} is not a plain state dict of tensors (the authors' format): pass the authors' {member}"
        )
    return dict(state)


def read_published(path: str | Path, member: str) -> dict[str, Tensor]:
    """The authors' state dict in ``path``: the ``.model`` file itself, or the zip holding ``member``."""
    return _plain(_load(Path(path), member), Path(path), member)


def _some(keys: list[str], shown: int = 6) -> str:
    """The first few of ``keys`` and how many more there are."""
    more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
    return ", ".join(keys[:shown]) + more


def mapped_state(state: dict[str, Tensor], expected: dict[str, Tensor], what: str) -> dict[str, Tensor]:
    """``state`` under our names; CheckpointError listing unmapped keys, missing keys and wrong shapes."""
    names = {k: authors_key(k) for k in state}
    unmapped = sorted(k for k, name in names.items() if name is None or name not in expected)
    mapped = {name: state[k] for k, name in names.items() if name is not None and name in expected}
    wrong = sorted(
        f"{k} {tuple(v.shape)} (want {tuple(expected[k].shape)})"
        for k, v in mapped.items()
        if v.shape != expected[k].shape
    )
    found = (("unmapped keys", unmapped), ("wrong shapes", wrong))
    problems = [f"{label}: {_some(keys)}" for label, keys in found if keys]
    if problems:
        raise CheckpointError(f"cannot read {what}: " + "; ".join(problems))
    return {k: v.float() for k, v in mapped.items()}


def autoencoder_state(path: str | Path, arch: Arch) -> dict[str, Tensor]:
    """The encoder and decoder weights of ``path``: the authors' NestFuse auto-encoder (``.model`` or its zip),
    or an occo checkpoint of an RFN-Nest with the same ``nest_widths``."""

    path = Path(path)
    expected = {k: v for k, v in build_network(arch).state_dict().items() if k.startswith(("encoder.", "decoder."))}
    loaded = _load(path, AUTOENCODER_FILE)
    if isinstance(loaded, dict) and isinstance(loaded.get("arch"), dict):  # one of our checkpoints
        theirs = loaded["arch"]
        if theirs.get("name") != "rfn_nest" or list(theirs.get("nest_widths", [])) != list(arch.nest_widths):
            raise CheckpointError(
                f"{path} holds a {theirs.get('name', 'fifn')} network, not an RFN-Nest of arch.nest_widths "
                f"{list(arch.nest_widths)}: its auto-encoder does not fit"
            )
        state = {k: v for k, v in loaded["state_dict"].items() if k in expected}
    else:
        what = f"{path} as the NestFuse auto-encoder"
        state = mapped_state(_plain(loaded, path, AUTOENCODER_FILE), expected, what)
    if missing := sorted(expected.keys() - state.keys()):
        raise CheckpointError(f"{path} lacks auto-encoder weights: {_some(missing)}")
    return state


def published_widths(state: dict[str, Tensor]) -> list[int]:
    """The channels of each encoder scale in the authors' auto-encoder state (``DB{k}_0``'s output convs)."""
    widths, k = [], 1
    while (key := f"DB{k}_0.denseblock.1.conv2d.weight") in state:
        widths.append(int(state[key].shape[0]))
        k += 1
    return widths


def published_model(autoencoder: str | Path, rfn: str | Path) -> RFNNest:
    """An RFN-Nest holding the authors' two files (each a ``.model`` or its published zip); its ``nest_widths``
    are read from the auto-encoder. CheckpointError names every key that does not map or fit."""

    ae_state = read_published(autoencoder, AUTOENCODER_FILE)
    widths = published_widths(ae_state)
    if len(widths) != NEST_SCALES:
        raise CheckpointError(
            f"{autoencoder} is not a NestFuse auto-encoder of {NEST_SCALES} scales (its keys: "
            f"{', '.join(list(ae_state)[:2])}, ...): give {AUTOENCODER_FILE} first, then {RFN_FILE}"
        )
    arch = Arch(name="rfn_nest", nest_widths=widths)
    model = build_network(arch)
    expected = model.state_dict()
    of_rfn = {k: v for k, v in expected.items() if k.startswith("rfn.")}
    of_autoencoder = {k: v for k, v in expected.items() if k not in of_rfn}
    state = mapped_state(ae_state, of_autoencoder, f"{autoencoder} as the NestFuse auto-encoder")
    state |= mapped_state(read_published(rfn, RFN_FILE), of_rfn, f"{rfn} as the RFN")
    if missing := sorted(expected.keys() - state.keys()):
        raise CheckpointError(f"cannot convert {autoencoder} + {rfn}: missing keys: {_some(missing)}")
    model.load_state_dict(state)
    return model


def convert_rfn_nest(autoencoder: str | Path, rfn: str | Path, dst: str | Path) -> Path:
    """The authors' auto-encoder and RFN files as one occo checkpoint (``arch.name: rfn_nest``), recording
    both sources' names and sha256."""

    model = published_model(autoencoder, rfn)
    sources = {
        name: {"file": Path(p).name, "sha256": sha256_file(p)}
        for name, p in (("autoencoder", autoencoder), ("rfn", rfn))
    }
    return save_checkpoint(dst, model, model.arch, source=sources)
