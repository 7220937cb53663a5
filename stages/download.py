"""DVC stage `download`: make the synthetic set and import the datasets listed in params.yaml.

Reads the `download` section of params.yaml:

    download:
      synthetic: {n_train: 8, n_test: 4, height: 240, width: 320, seed: 0}
      max_pixels: 40000000      # images with more pixels are refused (checked from the file header)
      max_unpack_ratio: 100     # archives may unpack to at most this many times their size
      datasets:
        <name>: {source: <folder | archive | registry>, split: <split | null>, limit: <int | null>,
                 optional: <bool>}

Writes data/raw/<name>/..., published fused results to data/external/<Method>/<name>/...,
and data/raw/INDEX.json ({dataset: {split: n_pairs}}). Relative sources are relative to --root.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path


from occo.data import MAX_PIXELS, DataError, check_name, find_pairs, import_dataset, make_synthetic, write_text_atomic
from occo.data.archive import MAX_UNPACK_RATIO
from occo.data.importer import REGISTRY_SOURCE
from occo.data.io import check_max_pixels
from occo.stage import run_stage

log = logging.getLogger("stages.download")

_DATASET_KEYS = {"source", "split", "limit", "optional"}


def run(params: dict, root: Path) -> dict[str, dict[str, int]]:
    """Carry out the `download` params section under ``root``; returns the index it writes."""
    raw, external = root / "data" / "raw", root / "data" / "external"
    max_pixels = check_max_pixels(params.get("max_pixels", MAX_PIXELS), "download.max_pixels")
    ratio = params.get("max_unpack_ratio", MAX_UNPACK_RATIO)
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not ratio >= 1:
        raise DataError(f"download.max_unpack_ratio must be a number of at least 1, got {ratio!r}")
    external.mkdir(parents=True, exist_ok=True)  # a stage output even when no source has fused results
    index: dict[str, dict[str, int]] = {}
    synthetic = params.get("synthetic")
    if synthetic is not None:
        make_synthetic(raw / "synthetic", **synthetic)
        index["synthetic"] = {
            d.name: len(find_pairs(d / "ir", d / "vi")) for d in sorted((raw / "synthetic").iterdir()) if d.is_dir()
        }
    for name, cfg in (params.get("datasets") or {}).items():
        check_name(name, "download.datasets key")
        if not isinstance(cfg, dict) or "source" not in cfg or set(cfg) - _DATASET_KEYS:
            raise DataError(
                f"download.datasets.{name} must map 'source' (and optionally split, limit, optional), got {cfg!r}"
            )
        source = cfg["source"]
        if source != REGISTRY_SOURCE:
            source = (root / source).resolve()
            if not source.exists() and cfg.get("optional", False):
                log.warning("skipping optional dataset %s: source %s not found", name, source)
                continue
        index[name] = import_dataset(
            name,
            source,
            raw,
            split=cfg.get("split"),
            limit=cfg.get("limit"),
            external_root=external,
            downloads_root=root / "data" / "downloads",
            max_pixels=max_pixels,
            max_unpack_ratio=ratio,
        )
    write_text_atomic(raw / "INDEX.json", json.dumps(index, indent=2, sort_keys=True) + "\n")
    log.info("wrote %s: %s", raw / "INDEX.json", index)
    return index


def main(argv: list[str] | None = None) -> None:
    run_stage(__doc__, __file__, argv, lambda params, root, _: run(params, root), section="download")


if __name__ == "__main__":
    main()
