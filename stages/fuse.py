"""DVC stage `fuse`: fuse every dataset/split of `fuse.datasets` with the trained network.

Reads params `fuse` (datasets as "<dataset>/<split>" entries, checkpoint, device, batch_size: auto = 1 on CPU,
8 on CUDA), data/raw/INDEX.json and the weights (default models/occo.pt). Writes data/fused/occo/<dataset>/<split>/<id>.png (colour
from the visible image); datasets or splits absent from the index are skipped with a warning.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path


from occo.data import DataError, find_pairs
from occo.fuse import fuse_folder
from occo.device import resolve_batch_size, resolve_device
from occo.nn import CheckpointError, load_model
from occo.stage import run_stage

log = logging.getLogger("stages.fuse")

OUT = Path("data/fused/occo")


def run(params: dict, root: Path) -> list[Path]:
    """Fuse the splits listed in ``params`` (the `fuse` section) under ``root``; returns the folders written."""
    index = json.loads((root / "data/raw/INDEX.json").read_text(encoding="utf-8"))
    device = resolve_device(str(params.get("device", "auto")))
    model, _ = load_model(root / params.get("checkpoint", "models/occo.pt"), device)
    batch_size = resolve_batch_size(params.get("batch_size", "auto"), device)
    (root / OUT).mkdir(parents=True, exist_ok=True)  # the stage output exists even when nothing is fused
    folders = []
    for entry in params.get("datasets") or []:
        dataset, sep, split = str(entry).partition("/")
        if not sep or not dataset or not split:
            raise DataError(f"fuse.datasets entries are '<dataset>/<split>', got {entry!r}")
        if split not in index.get(dataset, {}):
            log.warning("skipping %s/%s: not in data/raw/INDEX.json", dataset, split)
            continue
        data = root / "data/raw" / dataset / split
        out = root / OUT / dataset / split
        fuse_folder(model, find_pairs(data / "ir", data / "vi"), out, device=device, batch_size=batch_size)
        folders.append(out)
    return folders


def main(argv: list[str] | None = None) -> None:
    run_stage(
        __doc__, __file__, argv, lambda params, root, _: run(params, root), section="fuse",
        errors=(DataError, CheckpointError, FileNotFoundError),
    )


if __name__ == "__main__":
    main()
