"""Detector training and testing through ultralytics: offline setup, the resumable run, validation.

The detector is ultralytics' YOLOv5 *u* (``yolov5s.yaml``): the YOLOv5 backbone and neck with the
anchor-free, decoupled YOLOv8 head, not the anchor-based YOLOv5 of the paper (docs/downstream.md).

Runs resume only from a ``last.pt`` this pipeline recorded (``occo_run.json``: the run's identity —
hyperparameters and content digests of its images and labels — and the sha256 of the checkpoint after
each epoch, see :func:`train_detector`). occo itself never unpickles a checkpoint; ultralytics does
when it resumes or tests one (its format pickles the model), so it is handed only a recorded file.

Offline by construction: :func:`prepare_ultralytics` sets ``YOLO_OFFLINE``, keeps ultralytics'
settings in ``$YOLO_CONFIG_DIR`` (default ``<root>/.cache/ultralytics``), places the font it would
otherwise download, and turns off its experiment-tracker integrations (its DVCLive hook would open
a DVC experiment of its own inside ``dvc repro``). Pretrained weights come only from
:func:`occo.fetch.weights.resolve_weights` and are read without unpickling code
(:mod:`occo.downstream.detect.weights`); on CUDA the precision is bf16, which skips ultralytics' fp16
AMP self-test (that test downloads ``yolo26n.pt``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from occo.config import Detect
from occo.data.io import IMAGE_EXTS, sha256_file, write_text_atomic
from occo.downstream.detect.data import BuiltDataset
from occo.downstream.detect.weights import coco_network
from occo.fetch.weights import resolve_weights
from occo.pipeline.device import resolve_device
from occo.pipeline.memory import fitting, measure_peak, memory_budget, retry_halving
from occo.pipeline.resume import change_reason, digest_files

log = logging.getLogger(__name__)

MODEL_SIZES = ("n", "s", "m", "l", "x")
"""YOLOv5 sizes: ultralytics ``yolov5<size>.yaml``, COCO weights ``yolov5<size>u.pt`` (registry ``yolov5<size>u``)."""

_INTEGRATIONS = ("clearml", "comet", "dvc", "mlflow", "raytune", "tensorboard", "wandb", "sync")
RUN_STATE = "occo_run.json"
"""The record of a run folder: identity, recorded checkpoint, finished, validated."""


def prepare_ultralytics(root: Path) -> ModuleType:
    """Import ultralytics for offline use and return its ``ultralytics.utils`` module.

    Before the import: ``YOLO_OFFLINE=1`` (skips the connectivity probe) and ``YOLO_CONFIG_DIR``
    (default ``<root>/.cache/ultralytics``) unless already set, so a global settings file cannot
    redirect anything. After it: matplotlib's DejaVuSans copied to ``<config>/Arial.ttf`` when
    missing (ultralytics otherwise downloads Arial.ttf when it reads a dataset), and the tracker
    integrations and event sync switched off in ultralytics' settings.
    """
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(Path(root) / ".cache/ultralytics"))
    import matplotlib
    import ultralytics.utils as uutils

    font = Path(uutils.USER_CONFIG_DIR) / "Arial.ttf"
    if not font.is_file():
        font.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(matplotlib.get_data_path()) / "fonts/ttf/DejaVuSans.ttf", font)
    off = {key: False for key in _INTEGRATIONS if uutils.SETTINGS.get(key) is not False}
    if off:
        uutils.SETTINGS.update(off)
    return uutils


@dataclass(frozen=True)
class TrainConfig:
    """Detector hyperparameters shared by every method, resolved from params ``detect``."""

    model: str  # yolov5n | yolov5s | yolov5m | yolov5l | yolov5x
    weights: Path | None  # COCO checkpoint; None = random init
    weights_sha256: str | None  # its content, part of the run's identity
    epochs: int
    imgsz: int
    batch: int
    nbs: int
    warmup_epochs: float
    workers: int
    device: str  # ultralytics device string: "cpu" or a CUDA index
    amp: bool | str  # False or "bf16"
    seed: int
    memory_budget_gb: float | str = "auto"  # of the validation (detect.memory_budget_gb); not part of the identity

    @property
    def torch_device(self) -> torch.device:
        """:attr:`device` as a torch device."""
        return torch.device("cpu" if self.device == "cpu" else f"cuda:{self.device}")

    def fingerprint(self) -> dict[str, Any]:
        """What a resumed run must share with the interrupted one."""
        return {
            "model": self.model,
            "weights": str(self.weights) if self.weights else None,
            "weights_sha256": self.weights_sha256,
            "epochs": self.epochs,
            "imgsz": self.imgsz,
            "batch": self.batch,
            "nbs": self.nbs,
            "warmup_epochs": self.warmup_epochs,
            "amp": self.amp,
            "seed": self.seed,
        }


def resolve_model_weights(cfg: Detect, root: Path) -> Path | None:
    """The COCO-pretrained checkpoint of ``cfg.model``: ``cfg.weights`` when set, else the registry's
    ``<model>u`` entry (models/pretrained/, downloaded when absent); None only when ``cfg.pretrained`` is
    false (random init). WeightsUnavailableError naming file, URL and param."""
    if not cfg.pretrained:
        log.warning("detect.pretrained is false: detectors start from random weights (smoke runs only)")
        return None
    return resolve_weights(f"{cfg.model}u", cfg.weights, param="detect.weights", root=root)


def train_config(cfg: Detect, root: Path) -> TrainConfig:
    """The :class:`TrainConfig` of ``cfg``; CUDA when ``device: auto`` finds one (bf16 there)."""
    device = resolve_device(cfg.device, "detect.device")
    weights = resolve_model_weights(cfg, root)
    return TrainConfig(
        model=cfg.model,
        weights=weights,
        weights_sha256=None if weights is None else sha256_file(weights),
        epochs=cfg.epochs,
        imgsz=cfg.imgsz,
        batch=cfg.batch,
        nbs=cfg.nbs,
        warmup_epochs=cfg.warmup_epochs,
        workers=cfg.workers,
        device="cpu" if device.type == "cpu" else str(device.index or 0),
        amp="bf16" if cfg.amp == "bf16" and device.type == "cuda" else False,
        seed=cfg.seed,
        memory_budget_gb=cfg.memory_budget_gb,
    )


def detector_identity(cfg: TrainConfig, data: BuiltDataset) -> dict[str, Any]:
    """The identity of a training run: ``params`` (its hyperparameters), ``images`` and ``labels``
    (content digests of the built dataset's images, read through their links, and label files; not the
    ``*.cache`` files ultralytics adds beside them)."""
    base = data.data_yaml.parent

    def files(folder: str, suffixes: tuple[str, ...]) -> dict[str, Path]:
        found = (p for p in (base / folder).rglob("*") if p.suffix.lower() in suffixes and p.is_file())
        return {p.relative_to(base).as_posix(): p for p in found}

    images, labels = files("images", IMAGE_EXTS), files("labels", (".txt",))
    return {"params": cfg.fingerprint(), "images": digest_files(images), "labels": digest_files(labels)}


def read_run_state(run_dir: Path) -> dict[str, Any] | None:
    """The :data:`RUN_STATE` record of ``run_dir`` (identity, recorded checkpoint, finished, validated), or None."""
    path = run_dir / RUN_STATE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def write_run_state(run_dir: Path, state: dict[str, Any]) -> None:
    """Write the :data:`RUN_STATE` record of ``run_dir`` atomically."""
    write_text_atomic(run_dir / RUN_STATE, json.dumps(state, indent=2) + "\n")


def _record_checkpoint(run_dir: Path, state: dict[str, Any], last: Path, epochs: int) -> None:
    """Record ``last`` (its sha256 and the epochs it holds) as the checkpoint this run may resume from."""
    state["checkpoint"] = {"epochs": epochs, "sha256": sha256_file(last)}
    write_run_state(run_dir, state)


def stale_reason(run_dir: Path, saved: dict[str, Any] | None, identity: dict[str, Any]) -> str | None:
    """Why ``run_dir`` cannot be reused or resumed (None: it can): no record, another identity, or a
    ``last.pt`` that is not the file recorded (missing, cut short by a kill, replaced)."""
    if saved is None:
        return f"it has no {RUN_STATE}" if run_dir.exists() else "new run"
    if (reason := change_reason(saved.get("identity"), identity)) is not None:
        return f"{reason} since this run started"
    last, recorded = run_dir / "weights" / "last.pt", saved.get("checkpoint")
    if recorded is None:
        return "it was stopped before its first checkpoint"
    if not last.is_file() or sha256_file(last) != recorded["sha256"]:
        return f"{last} is missing or not the checkpoint this run recorded (cut short or replaced)"
    return None


def _start_over(run_dir: Path, reason: str, identity: dict[str, Any]) -> dict[str, Any]:
    """Delete ``run_dir`` (logging ``reason``) and record a new run of ``identity`` in it; its state."""
    if run_dir.exists():
        log.info("%s: %s; starting over", run_dir, reason)
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    state = {"identity": identity, "checkpoint": None, "finished": False, "validated": False}
    write_run_state(run_dir, state)
    return state


def pretrained_trainer(coco: Any) -> type:
    """ultralytics' DetectionTrainer for a new run whose network takes its weights from ``coco`` (a network built
    from ultralytics' YAML holding the COCO tensors, :func:`~occo.downstream.detect.weights.coco_network`) through
    ultralytics' own transfer (``DetectionModel.load``: the tensors that match, the class head resized)."""
    from ultralytics.models.yolo.detect import DetectionTrainer

    class PretrainedTrainer(DetectionTrainer):
        def get_model(self, cfg: Any = None, weights: Any = None, verbose: bool = True) -> Any:
            network = super().get_model(cfg=cfg, weights=weights, verbose=verbose)
            if weights is None:
                network.load(coco)
            return network

    return PretrainedTrainer


def _fresh_arguments(cfg: TrainConfig, run_dir: Path) -> dict[str, Any]:
    """ultralytics' training arguments of a new run: the hyperparameters, seeded and deterministic, no
    validation during training, the run written to ``run_dir``."""
    return {
        "pretrained": False,  # COCO weights come from pretrained_trainer, never from ultralytics reading the file
        "epochs": cfg.epochs,
        "imgsz": cfg.imgsz,
        "batch": cfg.batch,
        "nbs": cfg.nbs,
        "warmup_epochs": cfg.warmup_epochs,
        "amp": cfg.amp,
        "seed": cfg.seed,
        "deterministic": True,
        "val": False,
        "project": str(run_dir.parent.resolve()),
        "name": run_dir.name,
        "exist_ok": True,
        "verbose": False,
    }


def training_only_trainer(base: type | None = None) -> type:
    """ultralytics' ``DetectionTrainer`` (or ``base``, e.g. :func:`pretrained_trainer`'s) without validations of
    its own.

    With ``val=False`` ultralytics still validates the last epoch and, in its final evaluation, the
    ``best.pt`` it picked from that validation; :func:`validate_detector` then tests ``last.pt``, so each
    method was validated three times on the test split. Here training only trains (no ``best.pt``: nothing
    picks one) and ends by stripping the optimiser from ``last.pt``, as ultralytics' own final step does.
    """
    from ultralytics.models.yolo.detect import DetectionTrainer
    from ultralytics.utils.torch_utils import strip_optimizer

    class TrainingOnly(base or DetectionTrainer):
        def validate(self) -> tuple[dict, None]:
            self.best_fitness = -math.inf  # no fitness is ever measured, so no epoch is saved as best.pt
            return {}, None

        def final_eval(self) -> None:
            if self.last.exists():
                strip_optimizer(self.last)

    return TrainingOnly


def train_detector(cfg: TrainConfig, data: BuiltDataset, run_dir: Path) -> Path:
    """Train (or resume, or reuse) the detector of one dataset × method; returns its final ``last.pt``.

    ``run_dir/occo_run.json`` holds the run's :func:`detector_identity` and the sha256 of ``weights/last.pt``
    after every epoch (ultralytics' ``on_model_save``) and at the end. A run with the same identity whose
    ``last.pt`` is the recorded file is reused when finished and resumed otherwise; any other run folder
    is deleted and trained from scratch, with the reason in the log.
    """
    from ultralytics import YOLO

    identity = detector_identity(cfg, data)
    saved = read_run_state(run_dir)
    last = run_dir / "weights" / "last.pt"
    reason = stale_reason(run_dir, saved, identity)
    if reason is None and saved["finished"]:
        log.info("%s: finished run found, not retraining", run_dir)
        return last
    common = {"data": str(data.data_yaml), "device": cfg.device, "workers": cfg.workers, "plots": False}
    start = time.perf_counter()
    if reason is None:
        state, done = saved, saved["checkpoint"]["epochs"]
        log.info("%s: resuming from %s after epoch %d of %d", run_dir, last, done, cfg.epochs)
        model, how, base = YOLO(str(last)), {"resume": True}, None
    else:
        state, done = _start_over(run_dir, reason, identity), 0
        model, how = YOLO(f"{cfg.model}.yaml"), _fresh_arguments(cfg, run_dir)
        base = None if cfg.weights is None else pretrained_trainer(coco_network(cfg.model, cfg.weights))
    model.add_callback("on_model_save", lambda trainer: _record_checkpoint(run_dir, state, last, trainer.epoch + 1))
    model.train(**common, **how, trainer=training_only_trainer(base))
    state["finished"] = True  # ultralytics rewrote last.pt at the end (optimizer stripped): record that file
    _record_checkpoint(run_dir, state, last, cfg.epochs)
    seconds = time.perf_counter() - start
    epochs = max(cfg.epochs - done, 1)
    log.info(
        "%s: %d epochs in %.1f s (%.2f s/epoch, device %s)", run_dir, epochs, seconds, seconds / epochs, cfg.device
    )
    return last


def validation_batch(model: Any, cfg: TrainConfig) -> int:
    """The validation batch: ``detect.batch`` images, fewer when one image's measured cost (a prediction at
    ``imgsz``) says the batch would not fit ``detect.memory_budget_gb``."""
    import numpy as np

    device = cfg.torch_device
    budget = memory_budget(cfg.memory_budget_gb, "detect.memory_budget_gb", device)
    with measure_peak(device) as measured:
        model.predict(np.zeros((cfg.imgsz, cfg.imgsz, 3), np.uint8), imgsz=cfg.imgsz, device=cfg.device, verbose=False)
    batch = fitting(budget, measured.bytes, cfg.batch)
    if batch < cfg.batch:
        log.info(
            "validation: one image needs about %.2f GB on %s, budget %.2f GB: batch %d instead of %d",
            measured.bytes / (1 << 30),
            device,
            budget / (1 << 30),
            batch,
            cfg.batch,
        )
    return batch


def validate_detector(weights: Path, cfg: TrainConfig, data: BuiltDataset, run_dir: Path) -> Any:
    """Test ``weights`` on the val split (ultralytics defaults: conf 0.001, NMS IoU 0.7); the DetMetrics.

    The batch fits ``detect.memory_budget_gb`` (:func:`validation_batch`) and is halved on out-of-memory.
    """
    from ultralytics import YOLO

    model = YOLO(str(weights))

    def run(batch: int) -> Any:
        return model.val(
            data=str(data.data_yaml),
            split="val",
            imgsz=cfg.imgsz,
            batch=batch,
            device=cfg.device,
            workers=cfg.workers,
            plots=False,
            project=str(run_dir.resolve()),
            name="val",
            exist_ok=True,
            verbose=False,
        )

    return retry_halving(run, validation_batch(model, cfg), what=f"validation of {weights}", device=cfg.torch_device)
