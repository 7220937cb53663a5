"""The mask generation loop: detector boxes → SAM masks per modality, written per pair, resumable.

Per pair ``<id>`` of a split, under ``out_dir`` (= ``data/masks/<dataset>/<split>``):

    ir/<id>.png, vi/<id>.png   union of the SAM masks of the modality's boxes, 0/255 uint8, source size
    boxes/<id>.json            per modality the boxes (pixels, xyxy), scores and phrases, with the
                               prompt and thresholds that produced them

    identity/<id>.json         what the pair's masks were made from (:func:`pair_identity`): the sha256 of
                               its infrared and visible images and a digest of the settings

A pair is skipped when its files exist and its identity record equals the identity of its current images
and settings; any other pair is made again, its record removed first and written last (each file
atomically), so a pair whose images changed under the same id never keeps its old masks. The settings
that produced a folder are kept in ``settings.json``; when they change, the folder's old outputs are
removed before generating, so a resumed run never mixes settings.

Pairs go through the detector and SAM in batches bounded by a memory budget
(:class:`occo.pipeline.memory.BoundedBatches`): the first pair alone, measured, then as many pairs as
the budget holds (at most ``batch_size``); an out-of-memory error halves the batch and retries its pairs.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from occo.data import Pair, load_pair, save_png, sha256_file, to_uint8, write_text_atomic
from occo.masks.detector import Detections, Detector
from occo.masks.sam import SamMasker
from occo.pipeline.memory import BoundedBatches, memory_budget
from occo.pipeline.resume import digest_value

log = logging.getLogger(__name__)

MODALITIES: tuple[str, ...] = ("ir", "vi")
IDENTITY_DIR = "identity"
OUTPUT_DIRS: tuple[str, ...] = ("ir", "vi", "boxes", IDENTITY_DIR)
SETTINGS_FILE = "settings.json"


def pair_outputs(out_dir: Path, pair_id: str) -> dict[str, Path]:
    """The files one pair produces: ``ir``, ``vi`` masks and its ``boxes`` JSON."""
    return {
        "ir": out_dir / "ir" / f"{pair_id}.png",
        "vi": out_dir / "vi" / f"{pair_id}.png",
        "boxes": out_dir / "boxes" / f"{pair_id}.json",
    }


def identity_path(out_dir: Path, pair_id: str) -> Path:
    """The record of what a pair's masks were made from."""
    return out_dir / IDENTITY_DIR / f"{pair_id}.json"


def pair_identity(pair: Pair, settings: Mapping[str, Any], sources: Mapping[str, Path] | None = None) -> dict[str, str]:
    """What a pair's masks are made from: the content sha256 of its infrared and visible images, a digest of the
    ``settings``, and for imported masks the sha256 of each source mask file (``ir_mask``, ``vi_mask``)."""
    identity = {"ir": sha256_file(pair.ir), "vi": sha256_file(pair.vi), "settings": digest_value(dict(settings))}
    return identity | {f"{kind}_mask": sha256_file(path) for kind, path in (sources or {}).items()}


def is_done(
    out_dir: Path, pair_id: str, identity: Mapping[str, str], kinds: Iterable[str] = ("ir", "vi", "boxes")
) -> bool:
    """True when the pair's outputs ``kinds`` exist and its identity record equals ``identity``."""
    record = identity_path(out_dir, pair_id)
    if not record.is_file() or not all(pair_outputs(out_dir, pair_id)[kind].is_file() for kind in kinds):
        return False
    try:
        return json.loads(record.read_text(encoding="utf-8")) == dict(identity)
    except ValueError:  # a record cut short
        return False


def begin_pair(out_dir: Path, pair_id: str) -> None:
    """Before a pair's files are (re)written: remove its record, so a run killed midway never leaves it done."""
    identity_path(out_dir, pair_id).unlink(missing_ok=True)


def finish_pair(out_dir: Path, pair_id: str, identity: Mapping[str, str]) -> None:
    """After a pair's files are written: record what they were made from (this marks the pair done)."""
    write_text_atomic(identity_path(out_dir, pair_id), json.dumps(dict(identity), indent=1, sort_keys=True) + "\n")


def pending_pairs(
    out_dir: Path, pairs: list[Pair], identities: Mapping[str, Mapping[str, str]], kinds: Iterable[str]
) -> list[Pair]:
    """The pairs not done with their current identity, logging how many are skipped and how many made again."""
    kinds = tuple(kinds)
    pending = [p for p in pairs if not is_done(out_dir, p.id, identities[p.id], kinds)]
    again = sum(identity_path(out_dir, p.id).is_file() for p in pending)
    if len(pending) < len(pairs):
        log.info("%s: %d of %d pairs already done, skipped", out_dir, len(pairs) - len(pending), len(pairs))
    if again:
        log.info("%s: %d pairs made again: their images (or the masks they import) changed", out_dir, again)
    return pending


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


def generate_masks(
    pairs: list[Pair],
    out_dir: Path,
    models: Callable[[], tuple[Detector, SamMasker]],
    *,
    settings: dict,
    batch_size: int,
    desc: str = "masks",
    budget: int | None = None,
) -> int:
    """Write the masks and box JSON of every pair not done yet; returns how many were written.

    ``models()`` gives the detector and the SAM masker; it is called only when some pair is pending,
    so a finished folder costs no model loading. Pairs are batched within ``budget`` bytes of working
    memory (None: half of what the masker's device has free), at most ``batch_size`` pairs per forward.
    """
    prepare_folder(out_dir, settings)
    identities = {p.id: pair_identity(p, settings) for p in pairs}
    pending = pending_pairs(out_dir, pairs, identities, ("ir", "vi", "boxes"))
    if not pending:
        return 0
    detector, masker = models()
    bounded = bounded_batches(masker.device, batch_size, budget, desc)
    with tqdm(total=2 * len(pending), desc=desc, unit="img") as bar:
        for batch, (detections, masks) in bounded.run(pending, lambda b: mask_batch(b, detector, masker)):
            for k, pair in enumerate(batch):
                found = dict(zip(MODALITIES, detections[2 * k : 2 * k + 2]))
                begin_pair(out_dir, pair.id)
                write_pair(out_dir, pair.id, dict(zip(MODALITIES, masks[2 * k : 2 * k + 2])), found, settings)
                finish_pair(out_dir, pair.id, identities[pair.id])
            bar.update(2 * len(batch))
    return len(pending)


def bounded_batches(device: torch.device, batch_size: int, budget: int | None, desc: str) -> BoundedBatches:
    """Batches of at most ``batch_size`` pairs within ``budget`` bytes on ``device`` (None: half its free memory)."""
    if budget is None:
        budget = memory_budget("auto", "masks.memory_budget_gb", device)
    return BoundedBatches(batch_size, budget, device, what=desc, unit="pair")


def mask_batch(batch: list[Pair], detector: Detector, masker: SamMasker) -> tuple[list[Detections], list[np.ndarray]]:
    """The detections and union masks of a batch's images, in the order ir, vi, ir, vi, ..."""
    images = [as_rgb8(img) for pair in batch for img in load_pair(pair)]
    detections = detector.detect(images)
    return detections, masker.masks(images, [d.boxes for d in detections])


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
