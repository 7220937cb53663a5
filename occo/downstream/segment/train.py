"""Training one method's segmenter: set up → resume → epochs (steps, log, checkpoint) → test → finish.

Optimisation (docs/segmentation.md): SGD with momentum and the "poly" learning-rate schedule
(DeepLab's schedule, with torchvision's reference segmentation values), pixel-wise cross-entropy,
optional random crops and horizontal flips, bf16 autocast on CUDA (fp16 + gradient scaling where bf16
is unsupported), nothing on CPU.

Resuming follows :mod:`occo.pipeline.resume`: ``last.pt`` (model, optimiser, schedule, scaler, RNG
streams and the run's :func:`segmenter_identity`) is written after every epoch and resumed only under the
same identity; the dvclive rows the interrupted run logged after it are dropped, and the temporary files
of a killed write removed. A ``last.pt`` holding every epoch is only tested.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from dvclive import Live
from torch.utils.data import DataLoader
from tqdm import tqdm

from occo.config import Segment, as_dict
from occo.data import DataError, write_text_atomic
from occo.data.io import save_torch
from occo.downstream.segment.data import (
    CLASS_NAMES,
    IGNORE_INDEX,
    SegDataset,
    SegSample,
    as_hw,
    collate_padded,
    find_samples,
    labels_dir,
)
from occo.downstream.segment.model import Autocast, build_segmenter, encoder_weights_path
from occo.downstream.segment.scores import evaluate, metrics_record
from occo.pipeline.device import loader_workers, resolve_device
from occo.pipeline.memory import BoundedBatches, memory_budget
from occo.pipeline.resume import (
    digest_files,
    digest_value,
    load_resume,
    remove_stale_temps,
    rng_state,
    set_rng_state,
    trim_live_history,
)
from occo.pipeline.sources import Outputs

log = logging.getLogger(__name__)

SEGMENT_RESUME_INDEPENDENT = {"methods", "test_split", "num_workers", "device", "memory_budget_gb"}
"""segment.* params that may change without invalidating a method's checkpoint."""


def segmenter_identity(cfg: Segment, method: str, samples: Sequence[SegSample]) -> dict[str, str]:
    """What a method's ``last.pt`` must share with this run to be resumed: ``params`` (those that shape
    training, and the method), ``images`` and ``labels`` (content digests of its training samples, by id)."""
    relevant = {k: v for k, v in as_dict(cfg).items() if k not in SEGMENT_RESUME_INDEPENDENT}
    return {
        "params": digest_value({"params": relevant, "method": method})[:16],
        "images": digest_files({s.id: s.image for s in samples}),
        "labels": digest_files({s.id: s.label for s in samples}),
    }


def poly_factor(step: int, total: int, power: float) -> float:
    """The "poly" schedule: lr_step = lr · (1 − step/total)^power."""
    return max(1.0 - step / total, 0.0) ** power


def save_state(path: Path, state: Mapping[str, Any]) -> None:
    """Write a training state atomically (a crash mid-write keeps the previous one; a full disk is an OSError
    naming the file)."""
    save_torch(path, dict(state))


@dataclass(frozen=True, eq=False)
class MethodTraining:
    """One method's segmenter with what trains and tests it, and where it writes."""

    cfg: Segment
    method: str
    device: torch.device
    precision: Autocast
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    train_set: SegDataset
    test_loader: DataLoader
    batch_size: int
    workers: int
    steps_per_epoch: int
    n_test: int
    identity: dict[str, str]
    last_path: Path  # resumable state after every epoch
    final_path: Path  # final weights and the model config
    live_dir: Path  # dvclive: loss and lr per epoch, test IoU at the end

    @property
    def n_train(self) -> int:
        """The number of training images."""
        return len(self.train_set)


def _samples(cfg: Segment, root: Path, method: str, dataset: str) -> tuple[list[SegSample], list[SegSample], int]:
    """The train and test samples of ``method`` and the batch size: ``segment.batch_size``, or the number
    of training images when fewer. DataError for fewer than 2 training images (BatchNorm)."""
    train_samples = find_samples(root, method, dataset, cfg.train_split)
    test_samples = find_samples(root, method, dataset, cfg.test_split)
    if len(train_samples) < 2:
        where = labels_dir(root, dataset, cfg.train_split)
        raise DataError(f"{where}: {len(train_samples)} labelled image; training with BatchNorm needs at least 2")
    batch_size = cfg.batch_size
    if batch_size > len(train_samples):
        log.warning("segment.batch_size=%d > %d training images: using %d", batch_size, *[len(train_samples)] * 2)
        batch_size = len(train_samples)
    return train_samples, test_samples, batch_size


def _set_up(cfg: Segment, root: Path, method: str, dataset: str, outputs: Outputs) -> MethodTraining:
    """The segmenter of ``method`` from the shared initial weights, SGD with the poly schedule over every
    step of ``segment.epochs``, the training set and test loader; stale temporary files removed."""
    train_samples, test_samples, batch_size = _samples(cfg, root, method, dataset)
    steps_per_epoch = len(train_samples) // batch_size  # drop_last: BatchNorm needs > 1 sample per batch
    total_steps = cfg.epochs * steps_per_epoch
    device = resolve_device(cfg.device, "segment.device")
    model = build_segmenter(cfg.encoder, seed=cfg.seed, weights=encoder_weights_path(cfg, root)).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: poly_factor(step, total_steps, cfg.poly_power)
    )
    precision = Autocast.choose(cfg.amp, device)
    out_dir = root / outputs.models / dataset / method
    for path in (out_dir / "last.pt", out_dir / "model.pt"):
        remove_stale_temps(path)
    size = as_hw(cfg.size)
    test_set = SegDataset(test_samples, train=False, size=size)
    workers = loader_workers(cfg.num_workers, "segment.num_workers")
    return MethodTraining(
        cfg=cfg,
        method=method,
        device=device,
        precision=precision,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=torch.amp.GradScaler("cuda", enabled=precision.scaled),
        train_set=SegDataset(train_samples, train=True, size=size, crop=as_hw(cfg.crop), flip=cfg.flip, seed=cfg.seed),
        test_loader=DataLoader(
            test_set,
            batch_size=batch_size,
            num_workers=workers,
            collate_fn=collate_padded,
            pin_memory=device.type == "cuda",
        ),
        batch_size=batch_size,
        workers=workers,
        steps_per_epoch=steps_per_epoch,
        n_test=len(test_samples),
        identity=segmenter_identity(cfg, method, train_samples),
        last_path=out_dir / "last.pt",
        final_path=out_dir / "model.pt",
        live_dir=root / outputs.work / dataset / method,
    )


def _resume(t: MethodTraining, state: Mapping[str, Any]) -> int:
    """Load the model, optimiser, schedule and scaler of the resumable ``state`` into ``t`` and drop the
    dvclive rows logged after it (they are logged again); returns the epochs it holds."""
    t.model.load_state_dict(state["model"])
    t.optimizer.load_state_dict(state["optimizer"])
    t.scheduler.load_state_dict(state["scheduler"])
    t.scaler.load_state_dict(state["scaler"])
    start = int(state["epoch"])
    log.info("%s: resuming from %s after epoch %d of %d", t.method, t.last_path, start, t.cfg.epochs)
    trim_live_history(t.live_dir, start)
    return start


def _steps(t: MethodTraining, loader: DataLoader, desc: str) -> float:
    """One pass over ``loader``: forward under autocast, cross-entropy (IGNORE_INDEX left out), backward,
    SGD and schedule steps; returns the mean loss."""
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX)
    t.model.train()
    loss_sum = torch.zeros((), device=t.device)
    for images, labels in tqdm(loader, desc=desc, unit="step", dynamic_ncols=True, leave=False):
        images, labels = images.to(t.device, non_blocking=True), labels.to(t.device, non_blocking=True)
        with t.precision.autocast():
            loss = loss_fn(t.model(images).float(), labels)
        t.optimizer.zero_grad(set_to_none=True)
        t.scaler.scale(loss).backward()
        t.scaler.step(t.optimizer)
        t.scaler.update()
        t.scheduler.step()
        loss_sum += loss.detach()
    return float(loss_sum) / t.steps_per_epoch


def _checkpoint(t: MethodTraining, epochs: int) -> None:
    """Save ``last.pt``: everything a resumed run needs to continue after ``epochs`` as this one would."""
    rng = rng_state(t.device)
    save_state(
        t.last_path,
        {
            "model": t.model.state_dict(),
            "optimizer": t.optimizer.state_dict(),
            "scheduler": t.scheduler.state_dict(),
            "scaler": t.scaler.state_dict(),
            "epoch": epochs,
            "rng": rng,
            "fingerprint": t.identity,
        },
    )


def _train_epoch(t: MethodTraining, epoch: int, live: Live) -> None:
    """Epoch ``epoch`` (0-based): the training set in an order drawn from ``segment.seed`` and the epoch,
    the steps, the loss, lr and seconds logged to dvclive, and the checkpoint."""
    cfg = t.cfg
    order = torch.randperm(len(t.train_set), generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch))
    loader = DataLoader(
        t.train_set,
        sampler=[(epoch, int(i)) for i in order],
        batch_size=t.batch_size,
        drop_last=True,
        num_workers=t.workers,
        collate_fn=collate_padded,
        pin_memory=t.device.type == "cuda",
    )
    tic = time.perf_counter()
    mean_loss = _steps(t, loader, desc=f"segment {t.method} {epoch + 1}/{cfg.epochs}")
    seconds = time.perf_counter() - tic
    live.step = epoch + 1
    live.log_metric("train/loss", mean_loss)
    live.log_metric("train/lr", t.optimizer.param_groups[0]["lr"])
    live.log_metric("train/epoch_seconds", seconds)
    live.next_step()
    _checkpoint(t, epoch + 1)
    log.info("%s epoch %d/%d: loss %.4f, %.1f s", t.method, epoch + 1, cfg.epochs, mean_loss, seconds)


def _test(t: MethodTraining) -> dict[str, Any]:
    """The metrics record of the segmenter on the test split, in batches that fit ``segment.memory_budget_gb``."""
    budget = memory_budget(t.cfg.memory_budget_gb, "segment.memory_budget_gb", t.device)
    batches = BoundedBatches(t.batch_size, budget, t.device, what=f"test {t.method}", unit="image")
    conf = evaluate(t.model, t.test_loader, t.device, t.precision, desc=f"test {t.method}", batches=batches)
    return metrics_record(conf, epochs=t.cfg.epochs, n_train=t.n_train, n_test=t.n_test)


def _train_epochs(t: MethodTraining, start: int, rng: Mapping[str, Any] | None) -> dict[str, Any]:
    """Epochs ``start``..``segment.epochs``, then the test (its IoUs in dvclive's summary); returns the record.

    The global RNG (dropout in the ASPP head draws from it) is seeded from ``segment.seed``, or set to the
    resumed run's ``rng``, inside a fork: the caller's streams are left as they were.
    """
    device = t.device
    with (
        torch.random.fork_rng(devices=[device] if device.type == "cuda" else []),
        Live(dir=str(t.live_dir), resume=rng is not None, save_dvc_exp=False, dvcyaml=False) as live,
    ):
        torch.manual_seed(t.cfg.seed)
        if rng is not None:
            set_rng_state(rng, device)
        for epoch in range(start, t.cfg.epochs):
            _train_epoch(t, epoch, live)
        record = _test(t)
        defined = {name: value for name, value in record["iou"].items() if value is not None}
        live.summary["test"] = {"miou": record["miou"], "iou": defined}
    return record


def _finish(t: MethodTraining, record: Mapping[str, Any], metrics_path: Path) -> None:
    """Write the final weights (``model.pt``: weights, encoder, classes, identity) and the metrics JSON."""
    save_state(
        t.final_path,
        {
            "model": t.model.state_dict(),
            "encoder": t.cfg.encoder,
            "classes": list(CLASS_NAMES),
            "fingerprint": t.identity,
        },
    )
    write_text_atomic(metrics_path, json.dumps(record, indent=2) + "\n")
    log.info("%s: mIoU %.4f; wrote %s and %s", t.method, record["miou"], metrics_path, t.final_path)


def train_method(cfg: Segment, root: Path, method: str, dataset: str, outputs: Outputs) -> dict[str, Any]:
    """Train DeepLabV3+ on ``method``'s images of the train split (resuming from its ``last.pt``), test it
    on the test split, write its metrics JSON and final weights under ``outputs``; returns the metrics record."""
    root = Path(root)
    t = _set_up(cfg, root, method, dataset, outputs)
    state = load_resume(t.last_path, t.identity, remedy="delete it to train this method from scratch")
    start = 0 if state is None else _resume(t, state)
    log.info(
        "segment %s/%s %s: %d train / %d test images, %d steps/epoch, epochs %d..%d on %s (%s); checkpoint %s, logs %s",
        dataset,
        method,
        cfg.encoder,
        t.n_train,
        t.n_test,
        t.steps_per_epoch,
        start,
        cfg.epochs,
        t.device,
        t.precision.dtype or "float32",
        t.last_path,
        t.live_dir,
    )
    if start < cfg.epochs:
        record = _train_epochs(t, start, None if state is None else state["rng"])
    else:
        log.info("%s: %s already holds all %d epochs; testing only", method, t.last_path, cfg.epochs)
        record = _test(t)
    _finish(t, record, root / outputs.metrics / dataset / f"{method}.json")
    return record
