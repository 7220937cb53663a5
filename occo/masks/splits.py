"""Stage `masks`: the configured splits' masks, generated (Grounding DINO → SAM) or imported, with overlays."""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

from occo.config import Masks
from occo.data import find_pairs, write_text_atomic
from occo.masks.generate import generate_masks
from occo.masks.models import load_models, resolve_precision, settings_record
from occo.masks.overlays import write_gallery
from occo.masks.published import import_masks
from occo.pipeline.device import resolve_batch_size, resolve_device
from occo.pipeline.memory import memory_budget

log = logging.getLogger(__name__)


MASKS = Path("data/masks")
OVERLAYS = Path("reports/masks")
"""Overlays of the first pairs, kept apart from the masks so that the gallery size never changes what training reads."""
RECORD = OVERLAYS / "pairs.json"
"""How many pairs each split has masks for, and whether they were generated or imported."""


def run_masks(cfg: Masks, root: Path) -> dict[str, dict[str, int]]:
    """Stage `masks`: masks for every split of ``cfg.datasets``, generated (Grounding DINO → SAM) or imported
    (``cfg.import_``), with overlays and :data:`RECORD` (pairs per split); returns ``{dataset: {split: pairs
    written}}``."""
    index = json.loads((root / "data/raw/INDEX.json").read_text(encoding="utf-8"))
    out_root = root / MASKS
    out_root.mkdir(parents=True, exist_ok=True)  # the stage outputs, even when every split is skipped
    (root / OVERLAYS).mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device, "masks.device")
    dtype = resolve_precision(cfg.precision, device)
    batch_size = resolve_batch_size(cfg.batch_size, device)
    budget = memory_budget(cfg.memory_budget_gb, "masks.memory_budget_gb", device)
    models = functools.cache(lambda: load_models(cfg, root, device, dtype))
    written: dict[str, dict[str, int]] = {}
    record: dict[str, dict[str, dict]] = {}
    for dataset, splits in cfg.datasets.items():
        for split in splits:
            if split not in index.get(dataset, {}):
                log.warning(
                    "skipping %s/%s: not in data/raw/INDEX.json (has %s)", dataset, split, index.get(dataset, {})
                )
                continue
            raw = root / "data" / "raw" / dataset / split
            pairs = find_pairs(ir=raw / "ir", vi=raw / "vi")
            out_dir = out_root / dataset / split
            folder = cfg.import_.get(dataset, {}).get(split)
            if folder is not None:
                count = import_masks(root / folder, pairs, out_dir)
            else:
                count = generate_masks(
                    pairs,
                    out_dir,
                    models,
                    settings=settings_record(cfg),
                    batch_size=batch_size,
                    desc=f"masks {dataset}/{split}",
                    budget=budget,
                )
            write_gallery(pairs, out_dir, root / OVERLAYS / dataset / split, cfg.gallery)
            written.setdefault(dataset, {})[split] = count
            record.setdefault(dataset, {})[split] = {
                "pairs": len(pairs),
                "masks": "generated" if folder is None else "imported",
            }
            log.info("%s/%s: %d pairs written, %d in total, in %s", dataset, split, count, len(pairs), out_dir)
    write_text_atomic(root / RECORD, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return written
