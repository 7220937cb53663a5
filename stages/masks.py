"""DVC stage `masks`: object masks per modality (Grounding DINO boxes → SAM masks), or imported published masks.

Reads params `masks` and data/raw/INDEX.json (written by the download stage). For every split of
`masks.datasets` ({dataset: [splits]}; absent ones are skipped with a warning) it writes, under
data/masks/<dataset>/<split>/:
  ir/<id>.png, vi/<id>.png   binary masks (0/255, source size): the union of SAM's masks of the
                             boxes Grounding DINO finds for `masks.prompt` on that modality's image
  boxes/<id>.json            the boxes (pixels, xyxy), scores and phrases per modality, with the
                             prompt and thresholds
  settings.json              what produced the folder (changed settings regenerate it)
and reports/masks/<dataset>/<split>/<id>.png, overlays for the first `masks.gallery` pairs (kept apart
from the masks, so that the gallery size never changes what training depends on).
With `masks.import.<dataset>.<split>: <folder>` existing masks are validated and copied instead: the
authors' published `mask_vi/` + `mask_ir/` folders, or our `ir/` + `vi/` layout (the synthetic set's
own masks, data/raw/synthetic/<split>/masks). Pairs already done are skipped.
"""

from __future__ import annotations

import json
import logging
from functools import cache
from pathlib import Path

from occo.data import check_name, find_pairs
from occo.device import resolve_batch_size, resolve_device
from occo.masks.gallery import write_gallery
from occo.masks.generate import generate_masks
from occo.masks.importer import import_masks
from occo.masks.models import load_models, resolve_precision, settings_record
from occo.stage import run_stage

log = logging.getLogger("stages.masks")

GALLERY = Path("reports/masks")


def run(params: dict, root: Path) -> dict[str, dict[str, int]]:
    """Carry out the `masks` params section under ``root``; returns {dataset: {split: pairs written}}."""
    index = json.loads((root / "data/raw/INDEX.json").read_text(encoding="utf-8"))
    imports = params.get("import") or {}
    out_root = root / "data" / "masks"
    out_root.mkdir(parents=True, exist_ok=True)  # the stage outputs, even when every split is skipped
    (root / GALLERY).mkdir(parents=True, exist_ok=True)
    device = resolve_device(params["device"], "masks.device")
    dtype = resolve_precision(params["precision"], device)
    batch_size = resolve_batch_size(params["batch_size"], device, "masks.batch_size")
    models = cache(lambda: load_models(params, root, device, dtype))
    written: dict[str, dict[str, int]] = {}
    for dataset, splits in (params.get("datasets") or {}).items():
        check_name(dataset, "masks.datasets key")
        for split in splits:
            check_name(split, f"masks.datasets.{dataset} entry")
            if split not in index.get(dataset, {}):
                log.warning(
                    "skipping %s/%s: not in data/raw/INDEX.json (has %s)", dataset, split, index.get(dataset, {})
                )
                continue
            raw = root / "data" / "raw" / dataset / split
            pairs = find_pairs(raw / "ir", raw / "vi")
            out_dir = out_root / dataset / split
            folder = (imports.get(dataset) or {}).get(split)
            if folder is not None:
                count = import_masks(root / folder, pairs, out_dir)
            else:
                count = generate_masks(
                    pairs,
                    out_dir,
                    models,
                    settings=settings_record(params),
                    batch_size=batch_size,
                    desc=f"masks {dataset}/{split}",
                )
            write_gallery(pairs, out_dir, root / GALLERY / dataset / split, int(params["gallery"]))
            written.setdefault(dataset, {})[split] = count
            log.info("%s/%s: %d pairs written, %d in total, in %s", dataset, split, count, len(pairs), out_dir)
    return written


def main(argv: list[str] | None = None) -> None:
    run_stage(__doc__, __file__, argv, lambda params, root, _: run(params, root), section="masks")


if __name__ == "__main__":
    main()
