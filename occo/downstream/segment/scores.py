"""Segmentation scores: the confusion matrix on the test split, per-class IoU, mIoU, the metrics JSON and the table."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from occo.downstream.segment.data import CLASS_NAMES
from occo.downstream.segment.model import Autocast
from occo.pipeline.memory import BoundedBatches


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


def segmentation_table(results: Mapping[str, Mapping[str, Any]], *, title: str) -> str:
    """Methods × classes table of IoU and mIoU in %, best per column in bold (the paper's Table 3 shape)."""
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


def evaluate(
    model: torch.nn.Module,
    loader: DataLoader,
    device: torch.device,
    precision: Autocast,
    desc: str,
    batches: BoundedBatches | None = None,
) -> torch.Tensor:
    """The test set's confusion matrix, accumulated on ``device`` (argmax of the logits per pixel).

    With ``batches``, each loaded batch goes through the network in slices that fit its memory budget
    (halved and retried on out-of-memory); the predictions are the same.
    """
    model.eval()
    conf = torch.zeros(len(CLASS_NAMES), len(CLASS_NAMES), dtype=torch.int64, device=device)

    def predict(images: torch.Tensor) -> torch.Tensor:
        with precision.autocast():
            return model(images).argmax(1)

    with torch.inference_mode():
        for images, labels in tqdm(loader, desc=desc, unit="batch", dynamic_ncols=True, leave=False):
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            if batches is None:
                conf += confusion_matrix(predict(images), labels)
                continue
            for index, pred in batches.run(range(len(images)), lambda i, x=images: predict(x[i[0] : i[-1] + 1])):
                conf += confusion_matrix(pred, labels[index[0] : index[-1] + 1])
    return conf
