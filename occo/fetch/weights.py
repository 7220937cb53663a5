"""Pretrained weights named in the registry: a local copy, ``models/pretrained/``, or a verified download.

Every pretrained file the pipeline loads (SAM, Grounding DINO and its BERT, YOLO, segmentation
encoders) goes through :func:`resolve_weights`, so a missing file always fails the same way: one
error naming the file, the URL it comes from and the param that points to a local copy. Nothing
falls back to random weights; random init is a separate, explicit param of each stage.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from occo.data.io import DataError, sha256_file
from occo.fetch.download import fetch, registry_checks, verified
from occo.fetch.registry import load_registry

log = logging.getLogger(__name__)

PRETRAINED_DIR = Path("models/pretrained")
ENCODER_WEIGHTS = {e: f"{e}_imagenet" for e in ("resnet18", "resnet34", "resnet50", "resnet101")}
"""Supported DeepLabV3+ encoders (``segment.encoder``) → their ImageNet weights in the registry."""


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


def _how_to_provide(name: str, entry: dict, param: str) -> str:
    files = weight_files(entry)
    where = "; ".join(f"{f['filename']} from {f['url']}" for f in files)
    target = (
        f"a folder holding {', '.join(f['filename'] for f in files)}"
        if "files" in entry
        else f"/path/to/{entry['filename']}"
    )
    return f"get {where} where there is internet and set {param}: {target} in params.yaml"


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
        path = Path(local)
        if not path.is_absolute():
            path = Path(root) / path
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
