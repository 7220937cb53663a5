"""Training data: infrared/visible pairs with object masks, cut into random crops and batched.

A batch holds ``batch_size`` crops in 4 contiguous groups of n = batch_size / 4 (the layout
``OCCOLoss`` expects: group 1 gives the anchors, every group the negatives at the same position).
As in the public code, each image gives ``crops_per_image`` adjacent crops; with
``crops_per_image <= n`` an anchor's negatives never come from its own image.

Every crop is drawn from a generator seeded by (seed, global crop position), so batches are the same
whatever the number of workers and a resumed run sees exactly the batches it would have seen.
Images smaller than the crop are reflect-padded at the bottom/right (up to just under twice their
size; smaller images are an error naming the file).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from occo.data.color import rgb_to_ycbcr
from occo.data.io import DataError, load_array, to_float
from occo.data.pairs import find_pairs

log = logging.getLogger(__name__)

GROUPS = 4
MASK_KINDS = ("ir", "vi")


@dataclass(frozen=True)
class MaskedPair:
    """An infrared/visible pair with its infrared and visible object masks."""

    id: str
    ir: Path
    vi: Path
    ir_mask: Path
    vi_mask: Path


def mask_dir(root: Path, dataset: str, split: str) -> Path:
    """``data/masks/<dataset>/<split>`` (masks stage) when it exists, else ``data/raw/<dataset>/<split>/masks``."""
    generated = root / "data" / "masks" / dataset / split
    return generated if generated.is_dir() else root / "data" / "raw" / dataset / split / "masks"


def find_training_pairs(root: Path, dataset: str, split: str) -> list[MaskedPair]:
    """Pairs of ``data/raw/<dataset>/<split>`` with their masks; a missing mask raises DataError naming it.

    A dataset that was never imported, or lacks the split, raises DataError naming the param to set. A set
    too small to mean anything is warned about once, before any stage runs, by the inputs stage
    (``occo.pipeline.inputs.small_data``); the run records its size (dvclive ``pairs``) and the report says it.
    """
    if not (root / "data" / "raw" / dataset).is_dir():
        raise DataError(
            f"{dataset} was not imported (no data/raw/{dataset}): set download.datasets.{dataset}.source "
            f"to its folder or archive, or train.dataset to an imported one"
        )
    raw = root / "data" / "raw" / dataset / split
    if not raw.is_dir():
        have = sorted(p.name for p in raw.parent.iterdir() if p.is_dir())
        raise DataError(f"{dataset} has no split {split!r} (has {', '.join(have) or 'none'}): set train.split")
    masks = mask_dir(root, dataset, split)
    pairs = []
    for p in find_pairs(ir=raw / "ir", vi=raw / "vi"):
        paths = {kind: masks / kind / f"{p.id}.png" for kind in MASK_KINDS}
        for kind, path in paths.items():
            if not path.is_file():
                raise DataError(f"missing {kind} mask for pair {p.id} of {dataset}/{split}: {path}")
        pairs.append(MaskedPair(p.id, p.ir, p.vi, paths["ir"], paths["vi"]))
    return pairs


def minmax_float(arr: np.ndarray) -> Tensor:
    """A (H,W) or (H,W,3) image as float32 (C,H,W) stretched to its own min and max (an RGB image over its
    three channels jointly), as the authors' ``get_test_image`` reads training files; a flat image is 0."""
    t = to_float(arr)
    lo, hi = t.min(), t.max()
    return (t - lo) / (hi - lo) if hi > lo else torch.zeros_like(t)


SCALINGS: dict[str, Callable[[np.ndarray], Tensor]] = {"range": to_float, "minmax": minmax_float}
"""How a training file becomes [0, 1] values (``occo.train.routine.Routine.scaling``): ``range`` divides by the
full range of its type (255, 65535), as inference does; ``minmax`` stretches each file to its own range."""


def luminance(arr: np.ndarray, scaling: str = "range") -> Tensor:
    """(1, H, W) float luminance in [0, 1] of the file scaled by ``scaling``: grey as is, RGB through BT.601 Y
    (clamped to [0, 1])."""
    t = SCALINGS[scaling](arr)
    return rgb_to_ycbcr(t)[:1].clamp(0.0, 1.0) if t.shape[0] == 3 else t


def load_sample(pair: MaskedPair, scaling: str = "range") -> Tensor:
    """(4, H, W) float32: infrared, visible Y (each file scaled by ``scaling``, :data:`SCALINGS`), infrared
    mask, visible mask (masks 0/1)."""
    images = [load_array(pair.ir), load_array(pair.vi), load_array(pair.ir_mask), load_array(pair.vi_mask)]
    size = images[0].shape[:2]
    for path, arr in zip((pair.vi, pair.ir_mask, pair.vi_mask), images[1:]):
        if arr.shape[:2] != size:
            raise DataError(
                f"{path} is {arr.shape[0]}x{arr.shape[1]}, its infrared image {pair.ir} is {size[0]}x{size[1]}"
            )
    masks = [torch.from_numpy((m.max(axis=-1) if m.ndim == 3 else m) > 0)[None].float() for m in images[2:]]
    return torch.cat([luminance(images[0], scaling), luminance(images[1], scaling), *masks])


def pairs_with_objects(pairs: list[MaskedPair]) -> list[MaskedPair]:
    """The pairs with a pixel in either mask (the authors' ``loadmask`` skips the others); DataError when none
    has one."""
    kept = [p for p in pairs if any(bool(load_array(m).any()) for m in (p.ir_mask, p.vi_mask))]
    if len(kept) < len(pairs):
        log.info(
            "%d of %d pairs have no mask pixel: left out, as the authors' training does",
            len(pairs) - len(kept),
            len(pairs),
        )
    if not kept:
        raise DataError(
            f"none of the {len(pairs)} training pairs has a mask pixel (the official routine needs objects)"
        )
    return kept


def pad_to(sample: Tensor, crop: int, name: Path) -> Tensor:
    """Reflect-pad bottom/right up to ``crop``; DataError when the image is too small to reflect."""
    h, w = sample.shape[-2:]
    ph, pw = max(crop - h, 0), max(crop - w, 0)
    if not (ph or pw):
        return sample
    if ph >= h or pw >= w:
        raise DataError(f"{name} is {h}x{w}: too small for train.crop={crop} (reflect padding needs > {crop // 2} px)")
    return F.pad(sample[None], (0, pw, 0, ph), mode="reflect")[0]


def crop_origins(objects: Tensor, crop: int, count: int, generator: torch.Generator, retries: int = 20) -> Tensor:
    """(count, 2) top-left corners of ``crop``-sized windows over the (H, W) bool map ``objects``.

    Without object pixels: uniform. Otherwise each crop is the first of ``retries`` uniform candidates
    that holds an object pixel (all tested at once through an integral image); when none does, the
    window is placed uniformly around a random object pixel, so every crop contains one.
    """
    h, w = objects.shape
    cand = torch.stack(
        [
            torch.randint(0, h - crop + 1, (count, retries), generator=generator),
            torch.randint(0, w - crop + 1, (count, retries), generator=generator),
        ],
        dim=-1,
    )
    if not bool(objects.any()):
        return cand[:, 0]
    sat = F.pad(objects.to(torch.int64).cumsum(0).cumsum(1), (1, 0, 1, 0))
    y, x = cand.unbind(-1)
    inside = sat[y + crop, x + crop] - sat[y, x + crop] - sat[y + crop, x] + sat[y, x] > 0
    found = inside.any(dim=1)
    first = cand[torch.arange(count), inside.to(torch.int8).argmax(dim=1)]
    pixels = objects.nonzero()
    pick = pixels[torch.randint(0, len(pixels), (count,), generator=generator)]
    lo = (pick - crop + 1).clamp_min(0)
    hi = torch.minimum(pick, torch.tensor([h - crop, w - crop]))
    around = lo + (torch.rand(count, 2, generator=generator) * (hi - lo + 1)).long().clamp_max(hi - lo)
    return torch.where(found[:, None], first, around)


def _seed(*keys: int) -> int:
    """A 63-bit seed from integers (numpy's SeedSequence mixing: nearby keys give unrelated streams)."""
    hi, lo = np.random.SeedSequence(list(keys)).generate_state(2, np.uint32)
    return (int(hi) << 31) ^ int(lo)


class CropDataset(Dataset):
    """``dataset[(position, image)]`` → (crops_per_image, 4, crop, crop) crops of one image.

    Channels: infrared, visible Y, infrared mask, visible mask.

    ``position`` is the image's global place in the training stream; it seeds the crop generator, so a
    crop depends only on (seed, position, image). ``scaling``: how files become [0, 1] (:data:`SCALINGS`).
    """

    def __init__(
        self, pairs: list[MaskedPair], *, crop: int, crops_per_image: int, flip: bool, seed: int, scaling: str = "range"
    ) -> None:
        if not pairs:
            raise DataError("no training pairs")
        self.pairs, self.crop, self.crops_per_image, self.flip, self.seed = pairs, crop, crops_per_image, flip, seed
        self.scaling = scaling

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, key: tuple[int, int]) -> Tensor:
        position, index = key
        pair = self.pairs[index]
        g = torch.Generator().manual_seed(_seed(self.seed, position))
        sample = pad_to(load_sample(pair, self.scaling), self.crop, pair.ir)
        c, k = self.crop, self.crops_per_image
        origins = crop_origins(sample[2:].amax(dim=0) > 0, c, k, g)
        crops = torch.stack([sample[:, y : y + c, x : x + c] for y, x in origins.tolist()])
        if self.flip:
            mirrored = torch.rand(k, generator=g) < 0.5
            crops = torch.where(mirrored[:, None, None, None], crops.flip(-1), crops)
        return crops


def collate_crops(items: list[Tensor]) -> Tensor:
    """Crops of several images → one (B, 4, crop, crop) batch, each image's crops adjacent."""
    return torch.cat(items)


@dataclass(frozen=True)
class BatchPlan:
    """How the stream of images is cut into batches: each epoch a fresh permutation of the images
    (repeated when there are fewer images than one batch needs), cut into full batches."""

    n_images: int
    images_per_batch: int
    seed: int

    @property
    def repeats(self) -> int:
        return -(-self.images_per_batch // self.n_images)

    @property
    def batches_per_epoch(self) -> int:
        return self.repeats * self.n_images // self.images_per_batch

    def epoch_order(self, epoch: int) -> Tensor:
        g = torch.Generator().manual_seed(_seed(self.seed, epoch, 1))
        return torch.cat([torch.randperm(self.n_images, generator=g) for _ in range(self.repeats)])

    def batch(self, step: int) -> list[tuple[int, int]]:
        """Dataset keys ``(position, image)`` of global batch ``step``."""
        epoch, b = divmod(step, self.batches_per_epoch)
        order = self.epoch_order(epoch)[b * self.images_per_batch : (b + 1) * self.images_per_batch]
        first = step * self.images_per_batch
        return [(first + i, int(img)) for i, img in enumerate(order)]


class StepSampler(Sampler[list[tuple[int, int]]]):
    """Batch sampler for global steps ``start .. stop-1`` of a ``BatchPlan`` (resumes mid-epoch).

    Under data parallelism (``world_size`` > 1) optimisation step ``s`` of rank ``r`` takes plan batch
    ``s * world_size + r``: the ranks share one stream of batches, each batch used by exactly one rank,
    so no two ranks ever see the same crops. ``world_size=1`` is the single-process stream.
    """

    def __init__(self, plan: BatchPlan, start: int, stop: int, *, world_size: int = 1, rank: int = 0) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.plan, self.start, self.stop, self.world_size, self.rank = plan, start, stop, world_size, rank

    def __len__(self) -> int:
        return max(self.stop - self.start, 0)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        return (self.plan.batch(step * self.world_size + self.rank) for step in range(self.start, self.stop))


def check_batch_layout(batch_size: int, crops_per_image: int) -> int:
    """Images per batch; ValueError unless the batch splits into 4 groups and whole images."""
    if batch_size % GROUPS or batch_size <= 0:
        raise ValueError(f"train.batch_size={batch_size} must be a positive multiple of {GROUPS} (4 groups)")
    if not 1 <= crops_per_image <= batch_size // GROUPS or batch_size % crops_per_image:
        raise ValueError(
            f"train.crops_per_image={crops_per_image} must divide train.batch_size={batch_size} and be at most "
            f"{batch_size // GROUPS} (the group size), so that negatives come from other images"
        )
    return batch_size // crops_per_image
