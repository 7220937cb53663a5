"""Semantic segmentation on fused images: DeepLabV3+ (segmentation-models-pytorch), params ``segment``.

Protocol of OCCO §4.3 (after TarDAL/CoCoNet): every method in ``segment.methods`` (``occo``, the
``visible`` and ``infrared`` source images, published fused folders) trains its own DeepLabV3+ on its
own images of ``segment.train_split``, from the same initial weights (ImageNet encoder + decoder drawn
from ``segment.seed``) with the same hyperparameters and seed, and is tested on the shared
``segment.test_split`` labels. Labels are ``data/raw/<dataset>/<split>/labels/seg/<id>.png``: uint8
MSRS/MFNet class ids 0..8 (:data:`occo.data.SEG_CLASSES`); 255 marks pixels to ignore.

Per method, under the repository root:
  models/segment/<dataset>/<method>/last.pt    resumable state after every epoch (model, optimiser,
                                               schedule, scaler, RNG, run identity: params and content
                                               digests of the method's training images and labels),
  models/segment/<dataset>/<method>/model.pt   final weights and the model config,
  dvclive/segment/<dataset>/<method>/          training loss and lr per epoch, test IoU at the end,
  metrics/segment/<dataset>/<method>.json      {"iou": {class: IoU}, "miou", "epochs", "n_train", "n_test"},
and reports/segment/<dataset>.md, the methods × classes table (IoU in %) shaped like the paper's. The
pipeline splits the methods in two parts (:data:`OUTPUTS`): ``reference`` (source modalities and published
methods, trained once, under ``models/segment_reference``, ``dvclive/segment_reference``,
``reference/segment``) and ``ours`` (our fused images; it also gathers the reference results).
A method's outputs depend only on its own images, the labels and ``segment`` params. ``last.pt`` is
resumed (or, when it holds every epoch, only tested) only under the same identity; otherwise the method
trains from scratch and the log names what changed (params, images or labels).

Optimisation (docs/segmentation.md): SGD with momentum and the "poly" learning-rate schedule
(DeepLab's schedule, with torchvision's reference segmentation values), pixel-wise cross-entropy,
optional random crops and horizontal flips, bf16 autocast on CUDA (fp16 + gradient scaling where bf16 is unsupported), nothing
on CPU.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from dvclive import Live
from PIL import Image
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from occo.data import SEG_CLASSES, DataError, check_name, index_images, load_array, to_uint8, write_text_atomic
from occo.data.color import IMAGENET_MEAN, IMAGENET_STD
from occo.data.io import atomic_path
from occo.fetch.weights import ENCODER_WEIGHTS, resolve_weights
from occo.pipeline.device import resolve_device
from occo.pipeline.resume import (
    digest_files,
    digest_value,
    load_resume,
    remove_stale_temps,
    rng_state,
    set_rng_state,
    trim_live_history,
)
from occo.pipeline.sources import OURS, REFERENCE, Outputs, gather_reference, method_images, part_methods, select

log = logging.getLogger(__name__)

CLASS_NAMES: tuple[str, ...] = tuple(sorted(SEG_CLASSES, key=SEG_CLASSES.__getitem__))
"""The 9 MSRS/MFNet classes in id order (0 unlabelled ... 8 bump)."""
IGNORE_INDEX = 255
"""Label value excluded from the loss and the confusion matrix (also used for padding)."""
PAD_MULTIPLE = 16
"""DeepLabV3+ (output stride 8 or 16) needs inputs divisible by 16: batches are padded up to it."""
REPORT_DIR = Path("reports/segment")
_OURS = Outputs(models=Path("models/segment"), metrics=Path("metrics/segment"), work=Path("dvclive/segment"))
OUTPUTS: dict[str | None, Outputs] = {
    None: _OURS,  # no part: every method, written where `ours` writes
    OURS: _OURS,
    REFERENCE: Outputs(
        models=Path("models/segment_reference"),
        metrics=Path("reference/segment"),
        work=Path("dvclive/segment_reference"),
    ),
}
"""Where each part writes: model folders, metrics, training curves (``None``: one call for every method)."""
RESUME_INDEPENDENT = {"methods", "test_split", "num_workers", "device"}
"""segment.* params that may change without invalidating a method's checkpoint."""


# ---------------------------------------------------------------------------------------------- data


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


def as_hw(value: int | Sequence[int] | None, name: str) -> tuple[int, int] | None:
    """``None``, an int ``s`` (→ ``(s, s)``) or ``[h, w]`` → ``(h, w)``; DataError naming the param otherwise."""
    if value is None:
        return None
    hw = (value, value) if isinstance(value, int) else tuple(value)
    if len(hw) != 2 or not all(isinstance(v, int) and v > 0 for v in hw):
        raise DataError(f"params.yaml segment.{name}={value!r}: expected null, a positive int or [height, width]")
    return int(hw[0]), int(hw[1])


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


# --------------------------------------------------------------------------------------------- model


def encoder_weights_path(params: Mapping[str, Any], root: Path) -> Path | None:
    """The ImageNet encoder weights to start from, or None for random init (``encoder_weights: null``).

    ``segment.weights`` (a local file or HF snapshot folder) wins; else the registry copy in
    ``models/pretrained/``, downloaded when absent. WeightsUnavailableError (naming file, URL and
    ``segment.weights``) when neither is there.
    """
    encoder, kind = params["encoder"], params.get("encoder_weights")
    if encoder not in ENCODER_WEIGHTS:
        raise DataError(f"params.yaml segment.encoder={encoder!r}: supported encoders are {', '.join(ENCODER_WEIGHTS)}")
    if kind is None:
        if params.get("weights") is not None:
            raise DataError(
                "params.yaml segment.weights is set but segment.encoder_weights is null (random init): unset one"
            )
        return None
    if kind != "imagenet":
        raise DataError(f"params.yaml segment.encoder_weights={kind!r}: expected 'imagenet' or null (random init)")
    return resolve_weights(ENCODER_WEIGHTS[encoder], params.get("weights"), param="segment.weights", root=root)


def load_encoder_weights(encoder: torch.nn.Module, path: Path) -> None:
    """Load an ImageNet ResNet state dict into ``encoder``: smp-hub ``model.safetensors`` (or its
    snapshot folder) or a torchvision ``.pth``; the classifier (``fc.*``) is dropped. DataError naming
    the file when it cannot be read or does not fit the encoder."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.safetensors"
    try:
        if path.suffix == ".safetensors":
            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
            state = state.get("state_dict", state) if isinstance(state, dict) else state
        if not isinstance(state, dict):
            raise DataError(f"encoder weights {path} hold a {type(state).__name__}, not a state dict")
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        torch.nn.Module.load_state_dict(encoder, state, strict=True)
    except DataError:
        raise
    except (OSError, RuntimeError, SafetensorError, EOFError, ValueError) as exc:
        raise DataError(f"cannot load encoder weights {path}: {' '.join(str(exc).split())[:400]}") from exc


def build_model(encoder: str, *, seed: int, weights: Path | None, n_classes: int = len(CLASS_NAMES)) -> torch.nn.Module:
    """DeepLabV3+ (output stride 16, smp defaults) with ``encoder``; decoder and head drawn from
    ``seed`` (the global RNG is left untouched), encoder from ``weights`` (None = random, also seeded).

    The same arguments give bit-identical initial weights, so every method starts from the same point.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = smp.DeepLabV3Plus(encoder_name=encoder, encoder_weights=None, classes=n_classes)
    if weights is not None:
        load_encoder_weights(model.encoder, weights)
        log.info("DeepLabV3+ %s: ImageNet encoder from %s", encoder, weights)
    else:
        log.warning("DeepLabV3+ %s: RANDOM encoder (segment.encoder_weights is null); not for paper numbers", encoder)
    return model


# ------------------------------------------------------------------------------------------- metrics


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, n_classes: int = len(CLASS_NAMES)) -> torch.Tensor:
    """(n, n) int64 counts ``C[t, p]`` of pixels with label ``t`` predicted ``p``, on ``pred``'s device;
    pixels labelled outside 0..n-1 (IGNORE_INDEX, padding) are left out. One ``bincount`` of ``n·t + p``."""
    valid = (target >= 0) & (target < n_classes)
    flat = target[valid] * n_classes + pred[valid]
    return torch.bincount(flat, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def iou_per_class(conf: torch.Tensor) -> torch.Tensor:
    """IoU_c = TP_c / (TP_c + FP_c + FN_c) = C[c,c] / (Σ_p C[c,p] + Σ_t C[t,c] − C[c,c]), float64;
    NaN for a class absent from both the labels and the predictions (0/0: undefined)."""
    conf = conf.double()
    tp = conf.diagonal()
    union = conf.sum(0) + conf.sum(1) - tp
    return torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, math.nan))


def mean_iou(iou: torch.Tensor) -> float:
    """mIoU = mean of the defined per-class IoUs (all 9 classes, unlabelled included, as the paper;
    an undefined class — absent from labels and predictions — is left out rather than scored 0 or 1)."""
    defined = iou[~iou.isnan()]
    return float(defined.mean()) if defined.numel() else math.nan


def metrics_record(conf: torch.Tensor, *, epochs: int, n_train: int, n_test: int) -> dict[str, Any]:
    """The metrics JSON of one method: ``{"iou": {class: IoU or None}, "miou", "epochs", "n_train", "n_test"}``."""
    iou = iou_per_class(conf.cpu())
    return {
        "iou": {name: (None if math.isnan(v) else v) for name, v in zip(CLASS_NAMES, iou.tolist())},
        "miou": mean_iou(iou),
        "epochs": int(epochs),
        "n_train": int(n_train),
        "n_test": int(n_test),
    }


def markdown_table(results: Mapping[str, Mapping[str, Any]], *, title: str) -> str:
    """Methods × classes table of IoU and mIoU in %, best per column in bold (the paper's Table 5 shape)."""
    columns = [*CLASS_NAMES, "mIoU"]

    def values(record: Mapping[str, Any]) -> list[float | None]:
        return [*(record["iou"][c] for c in CLASS_NAMES), record["miou"]]

    table = {method: values(record) for method, record in results.items()}
    best = [max((row[i] for row in table.values() if row[i] is not None), default=None) for i in range(len(columns))]
    lines = [f"# Segmentation: {title}", "", "| method | " + " | ".join(columns) + " |"]
    lines.append("|---" * (len(columns) + 1) + "|")
    for method, row in table.items():
        cells = []
        for v, top in zip(row, best):
            text = "–" if v is None else f"{100 * v:.2f}"
            cells.append(f"**{text}**" if v is not None and v == top and len(results) > 1 else text)
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += ["", "IoU in %; – = class absent from the test labels and every prediction (undefined, not in mIoU).", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ training


@dataclass(frozen=True)
class Precision:
    """Autocast setting: bf16 on CUDA (fp16 + GradScaler where bf16 is unsupported); none on CPU."""

    dtype: torch.dtype | None

    @classmethod
    def choose(cls, amp: bool, device: torch.device) -> Precision:
        if not amp or device.type != "cuda":
            return cls(None)
        return cls(torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)

    def autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast("cuda", dtype=self.dtype) if self.dtype is not None else contextlib.nullcontext()

    @property
    def scaled(self) -> bool:
        return self.dtype == torch.float16


def run_identity(params: Mapping[str, Any], method: str, samples: Sequence[SegSample]) -> dict[str, str]:
    """What a method's ``last.pt`` must share with this run to be resumed: ``params`` (those that shape
    training, and the method), ``images`` and ``labels`` (content digests of its training samples, by id)."""
    relevant = {k: v for k, v in params.items() if k not in RESUME_INDEPENDENT}
    return {
        "params": digest_value({"params": relevant, "method": method})[:16],
        "images": digest_files({s.id: s.image for s in samples}),
        "labels": digest_files({s.id: s.label for s in samples}),
    }


def poly_factor(step: int, total: int, power: float) -> float:
    """The "poly" schedule: lr_step = lr · (1 − step/total)^power."""
    return max(1.0 - step / total, 0.0) ** power


def save_state(path: Path, state: Mapping[str, Any]) -> None:
    """Write a training state atomically (a crash mid-write keeps the previous one)."""
    with atomic_path(path) as tmp:
        torch.save(dict(state), tmp)


def evaluate(
    model: torch.nn.Module, loader: DataLoader, device: torch.device, precision: Precision, desc: str
) -> torch.Tensor:
    """The test set's confusion matrix, accumulated on ``device`` (argmax of the logits per pixel)."""
    model.eval()
    conf = torch.zeros(len(CLASS_NAMES), len(CLASS_NAMES), dtype=torch.int64, device=device)
    with torch.inference_mode():
        for images, labels in tqdm(loader, desc=desc, unit="batch", dynamic_ncols=True, leave=False):
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            with precision.autocast():
                pred = model(images).argmax(1)
            conf += confusion_matrix(pred, labels)
    return conf


def train_method(
    params: Mapping[str, Any], root: Path, method: str, dataset: str, outputs: Outputs = OUTPUTS[None]
) -> dict[str, Any]:
    """Train DeepLabV3+ on ``method``'s images of the train split (resuming from its ``last.pt``), test it
    on the test split, write its metrics JSON and final weights; returns the metrics record."""
    root = Path(root)
    seed, epochs = int(params["seed"]), int(params["epochs"])
    if epochs < 1:
        raise DataError(f"params.yaml segment.epochs={epochs}: expected at least 1")
    train_samples = find_samples(root, method, dataset, params["train_split"])
    test_samples = find_samples(root, method, dataset, params["test_split"])
    size, crop = as_hw(params.get("size"), "size"), as_hw(params.get("crop"), "crop")
    batch_size = int(params["batch_size"])
    if len(train_samples) < 2:
        where = labels_dir(root, dataset, params["train_split"])
        raise DataError(f"{where}: {len(train_samples)} labelled image; training with BatchNorm needs at least 2")
    if batch_size > len(train_samples):
        log.warning("segment.batch_size=%d > %d training images: using %d", batch_size, *[len(train_samples)] * 2)
        batch_size = len(train_samples)
    steps_per_epoch = len(train_samples) // batch_size  # drop_last: BatchNorm needs > 1 sample per batch
    total_steps = epochs * steps_per_epoch

    device = resolve_device(str(params.get("device", "auto")))
    precision = Precision.choose(bool(params.get("amp", True)), device)
    model = build_model(params["encoder"], seed=seed, weights=encoder_weights_path(params, root)).to(device)
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=float(params["lr"]),
        momentum=float(params.get("momentum", 0.9)),
        weight_decay=float(params.get("weight_decay", 1e-4)),
    )
    power = float(params.get("poly_power", 0.9))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: poly_factor(step, total_steps, power))
    scaler = torch.amp.GradScaler("cuda", enabled=precision.scaled)
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX)

    out_dir = root / outputs.models / dataset / method
    last_path, final_path = out_dir / "last.pt", out_dir / "model.pt"
    for path in (last_path, final_path):
        remove_stale_temps(path)
    fingerprint = run_identity(params, method, train_samples)
    resume = load_resume(last_path, fingerprint, remedy="delete it to train this method from scratch")
    start = 0
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
        scaler.load_state_dict(resume["scaler"])
        start = int(resume["epoch"])
        log.info("%s: resuming from %s after epoch %d of %d", method, last_path, start, epochs)

    workers = int(params.get("num_workers", 4))
    flip = bool(params.get("flip", True))
    train_set = SegDataset(train_samples, train=True, size=size, crop=crop, flip=flip, seed=seed)
    test_loader = DataLoader(
        SegDataset(test_samples, train=False, size=size),
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=collate_padded,
        pin_memory=device.type == "cuda",
    )
    live_dir = root / outputs.work / dataset / method
    if resume is not None:  # epochs the interrupted run logged after its last checkpoint are logged again
        trim_live_history(live_dir, start)
    log.info(
        "segment %s/%s %s: %d train / %d test images, %d steps/epoch, epochs %d..%d on %s (%s); checkpoint %s, logs %s",
        dataset,
        method,
        params["encoder"],
        len(train_samples),
        len(test_samples),
        steps_per_epoch,
        start,
        epochs,
        device,
        precision.dtype or "float32",
        last_path,
        live_dir,
    )
    if start < epochs:
        with (
            torch.random.fork_rng(devices=[device] if device.type == "cuda" else []),
            Live(dir=str(live_dir), resume=resume is not None, save_dvc_exp=False, dvcyaml=False) as live,
        ):
            torch.manual_seed(seed)  # dropout in the ASPP head draws from the global RNG
            if resume is not None:
                set_rng_state(resume["rng"], device)
            for epoch in range(start, epochs):
                order = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
                loader = DataLoader(
                    train_set,
                    sampler=[(epoch, int(i)) for i in order],
                    batch_size=batch_size,
                    drop_last=True,
                    num_workers=workers,
                    collate_fn=collate_padded,
                    pin_memory=device.type == "cuda",
                )
                model.train()
                loss_sum, tic = torch.zeros((), device=device), time.perf_counter()
                desc = f"segment {method} {epoch + 1}/{epochs}"
                bar = tqdm(loader, desc=desc, unit="step", dynamic_ncols=True, leave=False)
                for images, labels in bar:
                    images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
                    with precision.autocast():
                        loss = loss_fn(model(images).float(), labels)
                    optimizer.zero_grad(set_to_none=True)
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                    scheduler.step()
                    loss_sum += loss.detach()
                mean_loss = float(loss_sum) / steps_per_epoch
                seconds = time.perf_counter() - tic
                live.step = epoch + 1
                live.log_metric("train/loss", mean_loss)
                live.log_metric("train/lr", optimizer.param_groups[0]["lr"])
                live.log_metric("train/epoch_seconds", seconds)
                live.next_step()
                rng = rng_state(device)
                save_state(
                    last_path,
                    {
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "scaler": scaler.state_dict(),
                        "epoch": epoch + 1,
                        "rng": rng,
                        "fingerprint": fingerprint,
                    },
                )
                log.info("%s epoch %d/%d: loss %.4f, %.1f s", method, epoch + 1, epochs, mean_loss, seconds)
            conf = evaluate(model, test_loader, device, precision, desc=f"test {method}")
            record = metrics_record(conf, epochs=epochs, n_train=len(train_samples), n_test=len(test_samples))
            defined = {name: value for name, value in record["iou"].items() if value is not None}
            live.summary["test"] = {"miou": record["miou"], "iou": defined}
    else:
        log.info("%s: %s already holds all %d epochs; testing only", method, last_path, epochs)
        conf = evaluate(model, test_loader, device, precision, desc=f"test {method}")
        record = metrics_record(conf, epochs=epochs, n_train=len(train_samples), n_test=len(test_samples))
    save_state(
        final_path,
        {
            "model": model.state_dict(),
            "encoder": params["encoder"],
            "classes": list(CLASS_NAMES),
            "fingerprint": fingerprint,
        },
    )
    metrics_path = root / outputs.metrics / dataset / f"{method}.json"
    write_text_atomic(metrics_path, json.dumps(record, indent=2) + "\n")
    log.info("%s: mIoU %.4f; wrote %s and %s", method, record["miou"], metrics_path, final_path)
    return record


def run_segment(
    params: Mapping[str, Any],
    root: Path,
    *,
    dataset: str | None = None,
    method: str | None = None,
    part: str | None = None,
    write_tables: bool = True,
) -> dict[str, dict[str, Any]]:
    """Train and test every ``segment.methods`` entry on ``segment.dataset``; returns the metrics per method.

    ``dataset`` / ``method`` restrict the call to ``segment.dataset`` / one entry of ``segment.methods``
    (None: all); each method's outputs (:func:`train_method`) do not depend on which others ran. ``part``
    runs one half of the pipeline's stage (:func:`~occo.pipeline.sources.part_methods`): ``reference``
    trains the source modalities and published methods into :data:`OUTPUTS` ``reference``; ``ours``
    trains the others and returns (and writes to ``metrics/segment``) every method, the reference ones
    read from ``reference/segment``. ``write_tables`` writes ``reports/segment/<dataset>.md``
    (:func:`markdown_table` of the returned methods; never for ``reference``). A dataset without
    segmentation labels in its train or test split is skipped with a warning (returns ``{}``). The
    output folders are created either way, so DVC always finds its outputs.
    """
    root = Path(root)
    check_name(params["dataset"], "segment.dataset")
    for key in ("train_split", "test_split"):
        check_name(params[key], f"segment.{key}")
    for entry in params["methods"]:
        check_name(entry, "segment.methods entry")
    (name,) = select([params["dataset"]], dataset, "segment.dataset")
    methods = select(params["methods"], method, "segment.methods")
    outputs = OUTPUTS[part]
    for folder in (outputs.metrics, outputs.models, outputs.work, *(() if part == REFERENCE else (REPORT_DIR,))):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for split in (params["train_split"], params["test_split"]):
        if not labels_dir(root, name, split).is_dir():
            log.warning(
                "skipping segmentation: %s has no labels (set segment.dataset to a dataset imported with labels/seg)",
                labels_dir(root, name, split),
            )
            return {}
    results = {m: train_method(params, root, m, name, outputs) for m in part_methods(root, methods, part)}
    if part == OURS:
        results = gather_reference(root, outputs, OUTPUTS[REFERENCE], name, methods, results)
    if write_tables and part != REFERENCE:
        title = f"{name} {params['test_split']}, DeepLabV3+ {params['encoder']}, {params['epochs']} epochs"
        write_text_atomic(root / REPORT_DIR / f"{name}.md", markdown_table(results, title=title))
        log.info("wrote %s", root / REPORT_DIR / f"{name}.md")
    return results
