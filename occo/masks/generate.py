"""The mask generation loop: detector boxes → SAM masks per modality, written per pair, resumable.

Per pair ``<id>`` of a split, under ``out_dir`` (= ``data/masks/<dataset>/<split>``):

    ir/<id>.png, vi/<id>.png   union of the SAM masks of the modality's boxes, 0/255 uint8, source size
    boxes/<id>.json            per modality the boxes (pixels, xyxy), scores and phrases, with the
                               prompt and thresholds that produced them

A pair whose three files exist is skipped; each file is written atomically (JSON last). The
settings that produced a folder are kept in ``settings.json``; when they change, the folder's old
outputs are removed before generating, so a resumed run never mixes settings.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from tqdm import tqdm

from occo.data import Pair, load_pair, save_png, to_uint8, write_text_atomic
from occo.masks.detector import Detections, Detector
from occo.masks.sam import SamMasker

log = logging.getLogger(__name__)

MODALITIES: tuple[str, ...] = ("ir", "vi")
OUTPUT_DIRS: tuple[str, ...] = ("ir", "vi", "boxes")
SETTINGS_FILE = "settings.json"


def pair_outputs(out_dir: Path, pair_id: str) -> dict[str, Path]:
    """The files one pair produces: ``ir``, ``vi`` masks and its ``boxes`` JSON."""
    return {
        "ir": out_dir / "ir" / f"{pair_id}.png",
        "vi": out_dir / "vi" / f"{pair_id}.png",
        "boxes": out_dir / "boxes" / f"{pair_id}.json",
    }


def is_done(out_dir: Path, pair_id: str) -> bool:
    """True when every output of the pair exists."""
    return all(p.is_file() for p in pair_outputs(out_dir, pair_id).values())


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """``folder`` (created if absent) held under an exclusive flock, so that shards of one stage prepare it once."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def prepare_folder(out_dir: Path, settings: dict) -> None:
    """Make ``out_dir`` hold outputs of ``settings`` only: outputs of other settings are removed first (under a
    lock, so processes sharing the folder remove them once, before any writes its masks)."""
    path = out_dir / SETTINGS_FILE
    with _locked(out_dir):
        if path.is_file():
            previous = json.loads(path.read_text(encoding="utf-8"))
            if previous == settings:
                return
            changed = sorted(k for k in settings.keys() | previous.keys() if settings.get(k) != previous.get(k))
            log.warning("%s: settings changed (%s); removing its previous masks", out_dir, ", ".join(changed))
            for name in OUTPUT_DIRS:
                shutil.rmtree(out_dir / name, ignore_errors=True)
        write_text_atomic(path, json.dumps(settings, indent=2, sort_keys=True) + "\n")


def as_rgb8(arr: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a grey or RGB, 8- or 16-bit image (what the detector and SAM take)."""
    arr = to_uint8(arr)
    return np.repeat(arr[..., None], 3, axis=2) if arr.ndim == 2 else arr


def batches(items: list[Pair], size: int) -> Iterator[list[Pair]]:
    """Consecutive slices of ``items`` of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def generate_masks(
    pairs: list[Pair],
    out_dir: Path,
    models: Callable[[], tuple[Detector, SamMasker]],
    *,
    settings: dict,
    batch_size: int,
    desc: str = "masks",
) -> int:
    """Write the masks and box JSON of every pair not done yet (``batch_size`` pairs per forward); returns how
    many were written.

    ``models()`` gives the detector and the SAM masker; it is called only when some pair is pending,
    so a finished folder costs no model loading.
    """
    prepare_folder(out_dir, settings)
    pending = [p for p in pairs if not is_done(out_dir, p.id)]
    if len(pending) < len(pairs):
        log.info("%s: %d of %d pairs already done, skipped", out_dir, len(pairs) - len(pending), len(pairs))
    if not pending:
        return 0
    detector, masker = models()
    with tqdm(total=2 * len(pending), desc=desc, unit="img") as bar:
        for batch in batches(pending, batch_size):
            images = [as_rgb8(img) for pair in batch for img in load_pair(pair)]  # ir, vi, ir, vi, ...
            detections = detector.detect(images)
            masks = masker.masks(images, [d.boxes for d in detections])
            for k, pair in enumerate(batch):
                found = dict(zip(MODALITIES, detections[2 * k : 2 * k + 2]))
                write_pair(out_dir, pair.id, dict(zip(MODALITIES, masks[2 * k : 2 * k + 2])), found, settings)
            bar.update(2 * len(batch))
    return len(pending)


def write_pair(
    out_dir: Path, pair_id: str, masks: dict[str, np.ndarray], found: dict[str, Detections], settings: dict
) -> None:
    """Write one pair's 0/255 masks and then its box JSON (the JSON marks the pair done)."""
    paths = pair_outputs(out_dir, pair_id)
    for kind in MODALITIES:
        save_png(paths[kind], masks[kind].astype(np.uint8) * 255)
    height, width = masks["ir"].shape
    record = {
        "id": pair_id,
        "size": [height, width],
        **settings,
        **{kind: found[kind].to_json() for kind in MODALITIES},
    }
    write_text_atomic(paths["boxes"], json.dumps(record, indent=1) + "\n")
