"""Pretrained weights named in the registry: a local copy, ``models/pretrained/``, or a verified download.

Every pretrained file the pipeline loads (SAM, Grounding DINO and its BERT, YOLO, segmentation
encoders) goes through :func:`resolve_weights`, so a missing file always fails the same way: one
error naming the file, the URL it comes from and the param that points to a local copy. The VGG19
loss network's weights are the one exception to ``models/pretrained/``: they live where torchvision
caches them (:func:`vgg19_path`, resolved by :func:`resolve_vgg19`). Nothing falls back to random
weights; random init is a separate, explicit param of each stage.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import torch

from occo.data.io import DataError, sha256_file
from occo.fetch.download import fetch, registry_checks, verified
from occo.fetch.registry import load_registry

log = logging.getLogger(__name__)

PRETRAINED_DIR = Path("models/pretrained")
VGG19 = "vgg19"
"""The registry entry of the VGG19 loss network's weights (``train.vgg_weights``)."""
RFN_NEST_AUTOENCODER = "rfn_nest_autoencoder"
"""The registry entry of RFN-Nest's published NestFuse auto-encoder (``train.autoencoder``)."""
RFN_NEST_RFN = "rfn_nest_rfn"
"""The registry entry of RFN-Nest's published RFN (``train.rfn_weights``)."""
ENCODER_WEIGHTS = {e: f"{e}_imagenet" for e in ("resnet18", "resnet34", "resnet50", "resnet101")}
"""Supported DeepLabV3+ encoders (``segment.encoder``) → their ImageNet weights in the registry."""


RANDOM_INIT_INSTEAD = {
    "masks.sam_checkpoint": "masks.init: random",
    "masks.gdino_checkpoint": "masks.init: random",
    "masks.text_encoder": "masks.init: random",
    "masks.hf_model": "masks.init: random",
    "train.vgg_weights": "train.vgg_random_init: true",
    "detect.weights": "detect.pretrained: false",
    "segment.weights": "segment.encoder_weights: null",
}
"""The param that builds the same architecture at random init instead of loading the weights a path param
names (offline rehearsals and tests; such a run's numbers mean nothing)."""


def random_init_hint(param: str) -> str:
    """The sentence naming the random-init alternative to the weights of ``param`` ('' when there is none)."""
    instead = RANDOM_INIT_INSTEAD.get(param)
    return (
        f"; or, for a rehearsal or test without pretrained weights, {instead} builds the same architecture at "
        "random init (its numbers mean nothing)"
        if instead
        else ""
    )


class WeightsUnavailableError(DataError):
    """Pretrained weights could not be found or downloaded; the message says how to provide them."""


def weights_entry(name: str) -> dict:
    """The registry's ``weights`` entry ``name``; DataError listing the known names otherwise."""
    weights = load_registry()["weights"]
    if name not in weights:
        raise DataError(f"no pretrained weights named {name!r} in the registry; known: {', '.join(weights)}")
    return weights[name]


def weight_files(entry: dict) -> list[dict]:
    """The files of an entry: ``[entry]`` for a single file, else its ``files`` list."""
    return entry["files"] if "files" in entry else [entry]


def default_location(name: str, root: Path) -> Path:
    """Where the registry copy lives: ``<root>/models/pretrained/<filename>`` or ``.../<name>/`` for a folder."""
    entry = weights_entry(name)
    base = Path(root) / PRETRAINED_DIR
    return base / name if "files" in entry else base / entry["filename"]


def torch_hub_file(filename: str) -> Path:
    """Where torchvision keeps a downloaded checkpoint (``torch.hub.load_state_dict_from_url``'s cache):
    ``<torch.hub.get_dir()>/checkpoints/<filename>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def vgg19_path(local: str | Path | None) -> Path:
    """Where the VGG19 loss network's weights are read: ``local`` (``train.vgg_weights``) when set, else
    torchvision's cached copy of the registry's ``vgg19-dcbb9e9d.pth`` (:func:`torch_hub_file`)."""
    return Path(local) if local is not None else torch_hub_file(weights_entry(VGG19)["filename"])


def _under(root: Path, local: str | Path) -> Path:
    """``local``, a relative path starting at the repository ``root``."""
    path = Path(local)
    return path if path.is_absolute() else Path(root) / path


def _how_to_provide(name: str, entry: dict, param: str) -> str:
    files = weight_files(entry)
    where = "; ".join(f"{f['filename']} from {f['url']}" for f in files)
    target = (
        f"a folder holding {', '.join(f['filename'] for f in files)}"
        if "files" in entry
        else f"/path/to/{entry['filename']}"
    )
    return f"get {where} where there is internet and set {param}: {target} in params.yaml{random_init_hint(param)}"


def resolve_weights(
    name: str,
    local: str | Path | None,
    *,
    param: str,
    root: Path,
    download: bool = True,
    sha256_of: Callable[[Path], str] = sha256_file,
) -> Path:
    """The path of the weights ``name``: ``local`` when given, else the registry copy (fetched if needed).

    A single-file entry resolves to ``<root>/models/pretrained/<filename>``, a ``files`` entry to the
    folder ``<root>/models/pretrained/<name>/``. Downloads are resumable and verified, and a present
    copy is checked against its pinned sha256 or its download's ``.sha256`` record
    (occo.fetch.download). Raises WeightsUnavailableError naming the file(s), URL(s) and ``param``
    when ``local`` does not exist, or the registry copy is absent or fails its check and cannot be
    downloaded (or ``download`` is false). ``sha256_of`` hashes present files (occo.fetch.download.verified).
    """
    entry = weights_entry(name)
    if local is not None:
        path = _under(root, local)
        if not path.exists():
            raise WeightsUnavailableError(
                f"{name} weights {path} ({param}) not found: {_how_to_provide(name, entry, param)}"
            )
        return path
    target = default_location(name, root)
    folder = target if "files" in entry else target.parent
    for item in weight_files(entry):
        path = folder / item["filename"]
        checks = {**registry_checks(item), "sha256_of": sha256_of}
        if not download:
            if not verified(path, **checks):
                raise WeightsUnavailableError(
                    f"{name} weights {path} are missing or fail their check: {_how_to_provide(name, entry, param)}"
                )
            continue
        try:
            fetch(item["url"], path, **checks, hint=_how_to_provide(name, entry, param))
        except DataError as exc:
            raise WeightsUnavailableError(f"{name} weights {path} are not available: {exc}") from exc
    log.info("%s weights: %s", name, target)
    return target


def resolve_vgg19(local: str | Path | None, *, root: Path, sha256_of: Callable[[Path], str] = sha256_file) -> Path:
    """The VGG19 weights file (:func:`vgg19_path`): ``local`` (``train.vgg_weights``, relative to ``root``) when
    set, else torchvision's cached copy, downloaded and hash-checked when absent (``sha256_of`` hashes it).

    WeightsUnavailableError naming the file, its URL and ``train.vgg_weights`` when ``local`` is not a file, or
    the cached copy is absent and the download fails.
    """
    entry = weights_entry(VGG19)
    path = vgg19_path(None if local is None else _under(root, local))
    hint = (
        f"get {entry['filename']} from {entry['url']} into {torch_hub_file(entry['filename']).parent} "
        f"or set train.vgg_weights{random_init_hint('train.vgg_weights')}"
    )
    if local is not None:
        if not path.is_file():
            raise WeightsUnavailableError(f"VGG19 weights {path} (train.vgg_weights) not found: {hint}")
        return path
    if not path.is_file():
        try:
            fetch(entry["url"], path, **registry_checks(entry), hint=hint, sha256_of=sha256_of)
        except DataError as exc:
            raise WeightsUnavailableError(f"VGG19 weights {path} are not available: {exc}") from exc
    return path
