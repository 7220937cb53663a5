"""Where each method's images of a dataset split live, so every downstream task reads them the same way,
which of the configured methods/datasets one downstream call runs, and where its outputs go.

A downstream stage has two parts (dvc.yaml): ``reference`` trains on what no experiment changes — the
source modalities and published methods' results — once; ``ours`` trains on our fused images
(data/fused) and gathers both into the metrics files, so that every file holds every method.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from occo.data.io import DataError, write_text_atomic

SOURCE_MODALITIES = {"visible": "vi", "infrared": "ir"}
"""Single-modality baselines: the source images themselves."""
PUBLISHED = Path("data/external")
"""Published methods' results, imported with a dataset (scored and trained on once)."""
FUSED = Path("data/fused")
"""Our fused images: OCCO and extra checkpoints (re-done by every experiment)."""
REFERENCE, OURS = "reference", "ours"
PARTS = (REFERENCE, OURS)


@dataclass(frozen=True)
class Outputs:
    """Where a downstream run writes, per ``<dataset>/<method>``: model folders, metrics JSONs, and the
    YOLO datasets (detect) or training curves (segment)."""

    models: Path
    metrics: Path
    work: Path


def is_reference(root: Path, method: str) -> bool:
    """True for what no experiment changes: a source modality, or a published method (data/external/<method>)."""
    return method in SOURCE_MODALITIES or (Path(root) / PUBLISHED / method).is_dir()


def part_methods(root: Path, methods: Sequence[str], part: str | None) -> list[str]:
    """The ``methods`` a stage part trains: all for ``None``, else those whose images are (not) reference."""
    if part is None:
        return list(methods)
    if part not in PARTS:
        raise ValueError(f"unknown stage part {part!r}; choose from {', '.join(PARTS)}")
    return [m for m in methods if is_reference(root, m) == (part == REFERENCE)]


def gather_reference(
    root: Path,
    outputs: Outputs,
    reference: Outputs,
    dataset: str,
    methods: Sequence[str],
    ours: Mapping[str, dict[str, Any]],
) -> dict[str, dict[str, Any]]:
    """Every method's metrics on ``dataset`` in ``methods`` order, each also written to
    ``<outputs.metrics>/<dataset>/<method>.json``: ours as given, the reference methods' read from
    ``<reference.metrics>/<dataset>/<method>.json`` (written once by the reference part); DataError naming
    the file when the reference part has not run."""
    results = {}
    for method in methods:
        if method in ours:
            results[method] = dict(ours[method])
        else:
            path = Path(root) / reference.metrics / dataset / f"{method}.json"
            if not path.is_file():
                raise DataError(f"no reference result {path}: run the reference stage first (dvc repro)")
            results[method] = json.loads(path.read_text(encoding="utf-8"))
        write_text_atomic(
            Path(root) / outputs.metrics / dataset / f"{method}.json", json.dumps(results[method], indent=2) + "\n"
        )
    return results


def method_folders(base: Path, dataset: str, split: str) -> dict[str, Path]:
    """``{Method: base/<Method>/<dataset>/<split>}`` for every such folder under ``base``, by name."""
    if not base.is_dir():
        return {}
    return {folder.parents[1].name: folder for folder in sorted(base.glob(f"*/{dataset}/{split}")) if folder.is_dir()}


def method_images(root: Path, method: str, dataset: str, split: str) -> Path:
    """The image folder of ``method`` on ``dataset``/``split`` under the repository ``root``.

    ``visible``/``infrared`` are ``data/raw/<ds>/<split>/{vi,ir}``; any other method (``occo``
    included) is ``data/fused/<method>/<ds>/<split>`` or, for published results,
    ``data/external/<method>/<ds>/<split>``, whichever exists first. DataError when none does.
    """
    root = Path(root)
    if method in SOURCE_MODALITIES:
        candidates = [root / "data/raw" / dataset / split / SOURCE_MODALITIES[method]]
    else:
        candidates = [root / base / method / dataset / split for base in (FUSED, PUBLISHED)]
    for folder in candidates:
        if folder.is_dir():
            return folder
    tried = " or ".join(str(c) for c in candidates)
    raise DataError(f"no images of method {method!r} for {dataset}/{split}: {tried} does not exist")


def select(configured: Sequence[str], chosen: str | None, param: str) -> list[str]:
    """``[chosen]`` when a call is restricted to one entry of the ``param`` list, else all of ``configured``;
    DataError naming the param and its entries when ``chosen`` is not one of them."""
    if chosen is None:
        return list(configured)
    if chosen not in configured:
        raise DataError(f"{chosen!r} is not in params {param} ({', '.join(configured) or 'empty'}); add it there first")
    return [chosen]
