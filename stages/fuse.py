"""DVC stage `fuse`: fuse every dataset/split of `fuse.datasets` with the trained network (and extra checkpoints).

Reads params `fuse` (datasets as "<dataset>/<split>" entries, checkpoint, extra_checkpoints, device, batch_size:
auto = 1 on CPU, 8 on CUDA; max_pixels; memory_budget_gb: larger images are fused in tiles with the same
result), data/raw/INDEX.json and the weights (default models/occo.pt). Writes
data/fused/occo/<dataset>/<split>/<id>.png (colour from the visible image, the checkpoint's sha256 recorded
in each PNG: outputs of another checkpoint are fused again, never kept), and
data/fused/<Method>/<dataset>/<split>/ for every `extra_checkpoints` entry {Method: checkpoint} (e.g. the
authors' public checkpoint after `occo convert-checkpoint`), which the evaluate, detect and segment stages
then score as one more method. Datasets or splits absent from the index are skipped with a warning.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path


from occo.data import MAX_PIXELS, DataError, check_name, find_pairs, sha256_file
from occo.data.io import check_max_pixels
from occo.fuse import fuse_folder, memory_budget
from occo.device import resolve_batch_size, resolve_device
from occo.nn import load_model
from occo.stage import run_stage

log = logging.getLogger("stages.fuse")

OUT = Path("data/fused")


def _splits(params: dict, index: dict) -> list[tuple[str, str]]:
    """The (dataset, split) entries of `fuse.datasets` present in the index."""
    out = []
    for entry in params.get("datasets") or []:
        dataset, sep, split = str(entry).partition("/")
        if not sep or not dataset or not split:
            raise DataError(f"fuse.datasets entries are '<dataset>/<split>', got {entry!r}")
        check_name(dataset, f"dataset of fuse.datasets entry {entry!r}")
        check_name(split, f"split of fuse.datasets entry {entry!r}")
        if split not in index.get(dataset, {}):
            log.warning("skipping %s/%s: not in data/raw/INDEX.json", dataset, split)
            continue
        out.append((dataset, split))
    return out


def run(params: dict, root: Path) -> list[Path]:
    """Fuse the splits listed in ``params`` (the `fuse` section) under ``root``; returns the folders written."""
    index = json.loads((root / "data/raw/INDEX.json").read_text(encoding="utf-8"))
    device = resolve_device(params.get("device", "auto"), "fuse.device")
    batch_size = resolve_batch_size(params.get("batch_size", "auto"), device, "fuse.batch_size")
    max_pixels = check_max_pixels(params.get("max_pixels", MAX_PIXELS), "fuse.max_pixels")
    budget = memory_budget(params.get("memory_budget_gb", "auto"), "fuse.memory_budget_gb", device)
    checkpoints = {"occo": params.get("checkpoint", "models/occo.pt")} | dict(params.get("extra_checkpoints") or {})
    for method in checkpoints:
        check_name(method, "fuse.extra_checkpoints key")
    splits = _splits(params, index)
    (root / OUT / "occo").mkdir(parents=True, exist_ok=True)  # the stage output exists even when nothing is fused
    folders = []
    for method, checkpoint in checkpoints.items():
        model, _ = load_model(root / checkpoint, device)
        sha256 = sha256_file(root / checkpoint)
        for dataset, split in splits:
            data = root / "data/raw" / dataset / split
            out = root / OUT / method / dataset / split
            fuse_folder(
                model, find_pairs(data / "ir", data / "vi"), out, checkpoint_sha256=sha256, device=device,
                batch_size=batch_size, replace_other=True, max_pixels=max_pixels, memory_budget_bytes=budget,
            )
            folders.append(out)
    return folders


def main(argv: list[str] | None = None) -> None:
    run_stage(__doc__, __file__, argv, lambda params, root, _: run(params, root), section="fuse")


if __name__ == "__main__":
    main()
