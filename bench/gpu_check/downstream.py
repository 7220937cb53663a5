"""Step 7: the downstream models train and validate on the GPU with AMP, through the stages' own functions.

Both train on the visible images of a synthetic labelled set (``occo.data.make_synthetic``; 32 train
and 8 test pairs of 240x320) with the stage's precision (bf16 on CUDA):

* 7a: YOLOv5s from its yaml (random init, ``detect.pretrained: false``) at 640 px, batch 8, 3 epochs:
  ``build_dataset`` → ``train_config`` → ``train_detector`` → ``validate_detector`` of
  ``occo.downstream.detect`` (offline through ``prepare_ultralytics``). Iterations/s come from
  ultralytics' ``results.csv`` (cumulative seconds per epoch): epoch 2, which is past the start-up and,
  unlike the last epoch, has no validation in it.
* 7b: DeepLabV3+ with a random ResNet-50 encoder at 480x640 (images resized), batch 8, 3 epochs:
  ``occo.downstream.segment.train_method``, which tests on the test split at the end; iterations/s from
  its dvclive ``train/epoch_seconds`` of epoch 2.

The dry run: 4 + 2 pairs of 48x64, 64 px / native size, batch 2, one epoch, on the CPU.
"""

from __future__ import annotations

import csv
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from bench.gpu_check.context import DONE, Context, Row
from occo.config import load_params, override
from occo.data import make_synthetic
from occo.downstream.detect.data import build_dataset
from occo.downstream.detect.train import prepare_ultralytics, train_config, train_detector, validate_detector
from occo.downstream.segment import SEGMENT_OUTPUTS, train_method
from occo.downstream.segment.model import Autocast

DATASET, METHOD = "synthetic", "visible"


def synthetic_root(ctx: Context) -> Path:
    """A repository-like root holding ``data/raw/synthetic`` (made once per run, shared by 7a and 7b)."""
    root = ctx.work / "downstream"
    if not (root / "data/raw" / DATASET / "MANIFEST.md").is_file():
        n_train, n_test, height, width = ctx.pick((32, 8, 240, 320), (4, 2, 48, 64))
        make_synthetic(root / "data/raw" / DATASET, n_train=n_train, n_test=n_test, height=height, width=width)
    return root


def section(ctx: Context, name: str, **changes: Any) -> Any:
    """The ``name`` section of the check's params.yaml with ``changes`` (validated, as ``dvc exp run -S`` would)."""
    return getattr(override(load_params(ctx.params), {f"{name}.{key}": value for key, value in changes.items()}), name)


def epoch_rate(seconds: list[float], iterations: int) -> tuple[float, str]:
    """Iterations/s of epoch 2 (the first is start-up), or of the only epoch; and which epoch it was."""
    if len(seconds) >= 2:
        return iterations / seconds[1], "epoch 2"
    return iterations / seconds[0], "epoch 1 (start-up included)"


def yolo(ctx: Context) -> Iterator[Row]:
    root = synthetic_root(ctx)
    prepare_ultralytics(root)
    params = section(
        ctx,
        "detect",
        model="yolov5s",
        pretrained=False,
        weights=None,
        epochs=ctx.pick(3, 1),
        imgsz=ctx.pick(640, 64),
        batch=ctx.pick(8, 2),
        nbs=ctx.pick(8, 2),
        warmup_epochs=0,
        workers=ctx.pick(min(8, os.cpu_count() or 1), 0),
        device=ctx.device,
        amp="bf16",
        seed=0,
    )
    spec = params.datasets[DATASET]
    data = build_dataset(root, DATASET, spec, METHOD, root / "data/detect" / DATASET / METHOD, seed=0)
    cfg = train_config(params, root)
    run_dir = root / "models/detect" / DATASET / METHOD
    start = time.perf_counter()
    last = train_detector(cfg, data, run_dir)
    t_train = time.perf_counter() - start
    with open(run_dir / "results.csv", encoding="utf-8") as f:
        cumulative = [float(r["time"]) for r in csv.DictReader(f, skipinitialspace=True)]
    per_epoch = [b - a for a, b in zip([0.0, *cumulative], cumulative)]
    iterations = math.ceil(data.n_train / cfg.batch)
    rate, which = epoch_rate(per_epoch, iterations)
    start = time.perf_counter()
    box = validate_detector(last, cfg, data, run_dir).box
    t_val = time.perf_counter() - start
    yield Row(
        "7a YOLOv5s from scratch",
        DONE,
        f"device {cfg.device}, amp {cfg.amp or 'off'}: {cfg.epochs} epoch(s) x {iterations} iterations "
        f"({data.n_train} images at {cfg.imgsz} px, batch {cfg.batch}) in {t_train:.1f} s, {rate:,.2f} it/s "
        f"({which}); validate_detector on {data.n_val} images in {t_val:.1f} s; mAP50 {float(box.map50):.3f} "
        "(random init: meaningless)",
        {"iterations_s": rate, "train_s": t_train, "val_s": t_val, "val_images": data.n_val},
    )


def deeplab(ctx: Context) -> Iterator[Row]:
    root = synthetic_root(ctx)
    params = section(
        ctx,
        "segment",
        dataset=DATASET,
        train_split="train",
        test_split="test",
        methods=[METHOD],
        encoder="resnet50",
        encoder_weights=None,
        weights=None,
        epochs=ctx.pick(3, 1),
        batch_size=ctx.pick(8, 2),
        size=ctx.pick([480, 640], None),
        crop=None,
        num_workers=ctx.pick(min(4, os.cpu_count() or 1), 0),
        device=ctx.device,
        amp=True,
        seed=0,
    )
    start = time.perf_counter()
    record = train_method(params, root, METHOD, DATASET, SEGMENT_OUTPUTS[None])
    total = time.perf_counter() - start
    tsv = root / SEGMENT_OUTPUTS[None].work / DATASET / METHOD / "plots/metrics/train/epoch_seconds.tsv"
    with open(tsv, encoding="utf-8") as f:
        seconds = [float(r["epoch_seconds"]) for r in csv.DictReader(f, delimiter="\t")]
    iterations = record["n_train"] // params.batch_size
    rate, which = epoch_rate(seconds, iterations)
    precision = Autocast.choose(True, torch.device(ctx.device)).dtype
    size = "x".join(map(str, params.size)) if params.size else "native size"
    yield Row(
        "7b DeepLabV3+ ResNet-50 (random encoder)",
        DONE,
        f"device {ctx.device}, autocast {str(precision).removeprefix('torch.') if precision else 'off'}: "
        f"{params.epochs} epoch(s) x {iterations} iterations ({record['n_train']} images at {size}, batch "
        f"{params.batch_size}), {rate:,.2f} it/s ({which}); tested on {record['n_test']} images; "
        f"{total:.1f} s in all; mIoU {record['miou']:.3f} (random encoder: meaningless)",
        {"iterations_s": rate, "total_s": total},
    )
