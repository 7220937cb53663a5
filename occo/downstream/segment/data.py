"""Segmentation samples: the method's images with the shared label maps, read, normalised, augmented, batched.

Labels are ``data/raw/<dataset>/<split>/labels/seg/<id>.png``: uint8 MSRS/MFNet class ids 0..8
(:data:`occo.data.SEG_CLASSES`); 255 marks pixels to ignore.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from occo.data import SEG_CLASSES, DataError, index_images, load_array, to_uint8
from occo.data.color import IMAGENET_MEAN, IMAGENET_STD
from occo.pipeline.sources import method_images

CLASS_NAMES: tuple[str, ...] = tuple(sorted(SEG_CLASSES, key=SEG_CLASSES.__getitem__))
"""The 9 MSRS/MFNet classes in id order (0 unlabelled ... 8 bump)."""
IGNORE_INDEX = 255
"""Label value excluded from the loss and the confusion matrix (also used for padding)."""
PAD_MULTIPLE = 16
"""DeepLabV3+ (output stride 8 or 16) needs inputs divisible by 16: batches are padded up to it."""


@dataclass(frozen=True)
class SegSample:
    """One labelled image of a method: the method's image and the shared label map."""

    id: str
    image: Path
    label: Path


def labels_dir(root: Path, dataset: str, split: str) -> Path:
    """``<root>/data/raw/<dataset>/<split>/labels/seg``."""
    return Path(root) / "data/raw" / dataset / split / "labels" / "seg"


def find_samples(root: Path, method: str, dataset: str, split: str) -> list[SegSample]:
    """Every labelled id of ``dataset``/``split`` with ``method``'s image of it (sorted by id).

    DataError when the label folder is empty or the method's folder lacks an image of a labelled id.
    """
    labels = index_images(labels_dir(root, dataset, split))
    if not labels:
        raise DataError(f"no segmentation labels in {labels_dir(root, dataset, split)}")
    folder = method_images(root, method, dataset, split)
    images = index_images(folder)
    missing = sorted(set(labels) - set(images))
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise DataError(f"{folder} has no image for {len(missing)} labelled ids of {dataset}/{split} ({shown})")
    return [SegSample(key, images[key], labels[key]) for key in sorted(labels)]


def read_label(path: Path, n_classes: int = len(CLASS_NAMES)) -> np.ndarray:
    """A (H,W) uint8 class-id map: ids 0..n_classes-1, or IGNORE_INDEX; DataError naming the file otherwise.

    Grey (``L``) and palette (``P``: the indices are the ids, as in VOC-style label PNGs) images only;
    colour-coded label images are refused rather than guessed.
    """
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode not in ("L", "P"):
                raise DataError(f"label {path} is a {im.mode} image; expected a single-channel map of class ids")
            label = np.array(im)
    except DataError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"cannot read label {path}: {' '.join(str(exc).split())}") from exc
    bad = (label >= n_classes) & (label != IGNORE_INDEX)
    if bad.any():
        raise DataError(
            f"label {path} holds class id {int(label[bad].max())}; "
            f"expected 0..{n_classes - 1} or {IGNORE_INDEX} (ignore)"
        )
    return label


def read_rgb(path: Path) -> np.ndarray:
    """A (H,W,3) uint8 image: grey (infrared, grey fused images) replicated to 3 channels, 16-bit rescaled."""
    arr = to_uint8(load_array(path))
    return np.repeat(arr[..., None], 3, axis=2) if arr.ndim == 2 else arr


def normalise(rgb: np.ndarray) -> torch.Tensor:
    """(H,W,3) uint8 → (3,H,W) float32 ``(x/255 − mean) / std`` with the ImageNet mean and std."""
    x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (x - mean) / std


def as_hw(value: int | Sequence[int] | None) -> tuple[int, int] | None:
    """A ``segment.size`` / ``segment.crop`` value as ``(h, w)``: ``None`` stays None, an int ``s`` is ``(s, s)``."""
    if value is None:
        return None
    return (value, value) if isinstance(value, int) else (value[0], value[1])


def random_crop(
    image: torch.Tensor, label: torch.Tensor, crop: tuple[int, int], rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """A random ``crop``-sized window of (3,H,W) ``image`` and (H,W) ``label``; smaller images are first
    padded at the bottom/right (image with 0 = the ImageNet mean after normalisation, label with IGNORE_INDEX)."""
    ch, cw = crop
    pad_h, pad_w = max(ch - image.shape[1], 0), max(cw - image.shape[2], 0)
    if pad_h or pad_w:
        image = F.pad(image, (0, pad_w, 0, pad_h), value=0.0)
        label = F.pad(label, (0, pad_w, 0, pad_h), value=IGNORE_INDEX)
    y0 = int(rng.integers(0, image.shape[1] - ch + 1))
    x0 = int(rng.integers(0, image.shape[2] - cw + 1))
    return image[:, y0 : y0 + ch, x0 : x0 + cw], label[y0 : y0 + ch, x0 : x0 + cw]


class SegDataset(Dataset):
    """(normalised image, int64 label) pairs of ``samples``.

    ``size`` resizes every image (area) and label (nearest) to (h, w) first. For training
    (``train=True``) items are keyed ``(epoch, index)`` and draw their crop/flip from
    ``default_rng([seed, epoch, index])``, so an epoch's augmentation does not depend on worker count
    or on where a run was resumed; test items are keyed by index and left whole.
    """

    def __init__(
        self,
        samples: Sequence[SegSample],
        *,
        train: bool,
        size: tuple[int, int] | None = None,
        crop: tuple[int, int] | None = None,
        flip: bool = True,
        seed: int = 0,
    ) -> None:
        self.samples = list(samples)
        self.train, self.size, self.crop, self.flip, self.seed = train, size, crop, flip, seed

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The resized, normalised image and its label, checked to be the same size."""
        sample = self.samples[index]
        rgb, label = read_rgb(sample.image), read_label(sample.label)
        if rgb.shape[:2] != label.shape:
            raise DataError(
                f"image {sample.image} is {rgb.shape[1]}x{rgb.shape[0]} but label {sample.label} is "
                f"{label.shape[1]}x{label.shape[0]}"
            )
        if self.size is not None:
            h, w = self.size
            rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
            label = cv2.resize(label, (w, h), interpolation=cv2.INTER_NEAREST)
        return normalise(rgb), torch.from_numpy(label.astype(np.int64))

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.train:
            return self.load(int(key))
        epoch, index = key
        image, label = self.load(index)
        rng = np.random.default_rng([self.seed, epoch, index])
        if self.crop is not None:
            image, label = random_crop(image, label, self.crop, rng)
        if self.flip and rng.random() < 0.5:
            image, label = image.flip(-1), label.flip(-1)
        return image, label


def collate_padded(batch: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack (image, label) items, padding bottom/right to the batch's largest size rounded up to
    PAD_MULTIPLE (images with 0, labels with IGNORE_INDEX, so padding never counts)."""
    h = max(image.shape[1] for image, _ in batch)
    w = max(image.shape[2] for image, _ in batch)
    h, w = -(-h // PAD_MULTIPLE) * PAD_MULTIPLE, -(-w // PAD_MULTIPLE) * PAD_MULTIPLE
    images = torch.zeros(len(batch), 3, h, w)
    labels = torch.full((len(batch), h, w), IGNORE_INDEX, dtype=torch.int64)
    for i, (image, label) in enumerate(batch):
        images[i, :, : image.shape[1], : image.shape[2]] = image
        labels[i, : label.shape[0], : label.shape[1]] = label
    return images, labels
