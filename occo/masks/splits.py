"""Stage `masks`: the configured splits' masks, generated (Grounding DINO → SAM) or imported, with overlays."""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

from occo.config import Masks
from occo.data import Pair, find_pairs, write_text_atomic
from occo.masks.generate import generate_masks
from occo.masks.models import load_models, resolve_precision, settings_record
from occo.masks.overlays import write_gallery
from occo.masks.published import import_masks
from occo.pipeline.device import resolve_batch_size, resolve_device
from occo.pipeline.memory import memory_budget
from occo.pipeline.shard import WHOLE, Shard, ShardedStage

log = logging.getLogger(__name__)


MASKS = Path("data/masks")
OVERLAYS = Path("reports/masks")
"""Overlays of the first pairs, kept apart from the masks so that the gallery size never changes what training reads."""
RECORD = OVERLAYS / "pairs.json"
"""How many pairs each split has masks for, and whether they were generated or imported."""


def _splits(cfg: Masks, root: Path, *, warn: bool = True) -> list[tuple[str, str]]:
    """The (dataset, split) entries of ``cfg.datasets`` present in data/raw/INDEX.json (others warned about when
    ``warn``)."""
    index = json.loads((root / "data/raw/INDEX.json").read_text(encoding="utf-8"))
    found = []
    for dataset, splits in cfg.datasets.items():
        for split in splits:
            if split not in index.get(dataset, {}):
                if warn:
                    log.warning(
                        "skipping %s/%s: not in data/raw/INDEX.json (has %s)", dataset, split, index.get(dataset, {})
                    )
                continue
            found.append((dataset, split))
    return found


def _pairs(root: Path, dataset: str, split: str) -> list[Pair]:
    raw = root / "data" / "raw" / dataset / split
    return find_pairs(ir=raw / "ir", vi=raw / "vi")


def mask_splits(cfg: Masks, root: Path, shard: Shard = WHOLE) -> dict[str, dict[str, int]]:
    """``shard``'s share of the masks of every split of ``cfg.datasets``: generated (Grounding DINO → SAM) for its
    pairs, or imported (``cfg.import_``, by shard 0 alone); returns ``{dataset: {split: pairs written}}``."""
    out_root = root / MASKS
    out_root.mkdir(parents=True, exist_ok=True)  # the stage outputs, even when every split is skipped
    (root / OVERLAYS).mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device, "masks.device")
    dtype = resolve_precision(cfg.precision, device)
    batch_size = resolve_batch_size(cfg.batch_size, device)
    budget = memory_budget(cfg.memory_budget_gb, "masks.memory_budget_gb", device)
    models = functools.cache(lambda: load_models(cfg, root, device, dtype))
    written: dict[str, dict[str, int]] = {}
    for dataset, split in _splits(cfg, root):
        pairs = _pairs(root, dataset, split)
        out_dir = out_root / dataset / split
        folder = cfg.import_.get(dataset, {}).get(split)
        if folder is not None:
            count = import_masks(root / folder, pairs, out_dir) if shard.index == 0 else 0
        else:
            count = generate_masks(
                shard.take(pairs),
                out_dir,
                models,
                settings=settings_record(cfg),
                batch_size=batch_size,
                desc=f"masks {dataset}/{split}" + (f" shard {shard}" if shard.count > 1 else ""),
                budget=budget,
            )
        written.setdefault(dataset, {})[split] = count
        log.info("%s/%s: %d pairs written, %d in total, in %s", dataset, split, count, len(pairs), out_dir)
    return written


def write_galleries(cfg: Masks, root: Path) -> None:
    """The overlays of the first ``cfg.gallery`` pairs of every split, once all its masks are written, and
    :data:`RECORD` (pairs per split, generated or imported)."""
    record: dict[str, dict[str, dict]] = {}
    for dataset, split in _splits(cfg, root, warn=False):
        pairs = _pairs(root, dataset, split)
        write_gallery(pairs, root / MASKS / dataset / split, root / OVERLAYS / dataset / split, cfg.gallery)
        imported = cfg.import_.get(dataset, {}).get(split) is not None
        record.setdefault(dataset, {})[split] = {"pairs": len(pairs), "masks": "imported" if imported else "generated"}
    write_text_atomic(root / RECORD, json.dumps(record, indent=2, sort_keys=True) + "\n")


def run_masks(cfg: Masks, root: Path) -> dict[str, dict[str, int]]:
    """Stage `masks` in one process: :func:`mask_splits` on every pair, then :func:`write_galleries`."""
    written = mask_splits(cfg, root)
    write_galleries(cfg, root)
    return written


def masks_stage(cfg: Masks, root: Path) -> ShardedStage:
    """Stage `masks` as shards (occo/pipeline/shard.py): masks per shard, galleries at the merge."""
    return ShardedStage(lambda shard: mask_splits(cfg, root, shard), lambda _: write_galleries(cfg, root))
