"""Object detection on fused images (paper §4.3, Tables 3–4): YOLOv5 trained and tested per method.

For every dataset × method (``occo``, ``visible``, ``infrared``, published methods) a YOLO dataset
is built under ``.cache/occo/detect/<dataset>/<method>/`` (scratch, rebuilt by every run) — the method's images of the train and val
splits (symlinked), the dataset's labels converted to YOLO text, and a data YAML with absolute
paths — and a detector is trained from the same initial weights, hyperparameters and seed, then
tested on the shared val split. Runs live in ``models/detect/<dataset>/<method>/`` (ultralytics'
``weights/last.pt``), metrics go to ``metrics/detect/<dataset>/<method>.json``. The pipeline splits
this in two parts (:data:`OUTPUTS`): ``reference`` (source modalities and published methods, trained
once, under ``models/detect_reference`` and ``reference/detect``) and ``ours``
(our fused images; it also gathers the reference results into ``metrics/detect``).

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
:func:`occo.fetch.weights.resolve_weights`; on CUDA the precision is bf16, which skips ultralytics' fp16
AMP self-test (that test downloads ``yolo26n.pt``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import yaml
from tqdm import tqdm

from occo.data.io import IMAGE_EXTS, DataError, atomic_dir, sha256_file, write_text_atomic
from occo.data.names import check_name
from occo.data.pairs import find_pairs, index_images
from occo.downstream.labels import FORMATS, convert_label, read_class_names, write_yolo
from occo.fetch.weights import resolve_weights
from occo.pipeline.device import resolve_device
from occo.pipeline.resume import change_reason, digest_files
from occo.pipeline.sources import OURS, REFERENCE, Outputs, gather_reference, method_images, part_methods, select

log = logging.getLogger(__name__)

MODEL_SIZES = ("n", "s", "m", "l", "x")
"""YOLOv5 sizes: ultralytics ``yolov5<size>.yaml``, COCO weights ``yolov5<size>u.pt`` (registry ``yolov5<size>u``)."""

_INTEGRATIONS = ("clearml", "comet", "dvc", "mlflow", "raytune", "tensorboard", "wandb", "sync")
_RUN_STATE = "occo_run.json"


@dataclass(frozen=True)
class DatasetSpec:
    """How one dataset is read for detection (an entry of ``detect.datasets``)."""

    name: str
    train: str  # split the detectors train on
    val: str  # split they are tested on (the same split for all methods)
    labels: str  # label folder under data/raw/<name>/<split>/labels/
    format: str  # yolo | voc
    classes: list[str]  # YOLO class list of the task, index = class id
    paper_classes: list[str]  # classes whose mean is the paper's "all" column
    source_classes: list[str] | None = None  # names of the ids in YOLO source files
    val_fraction: float | None = None  # train == val: share of ids held out for val (seeded)

    @classmethod
    def from_params(cls, name: str, entry: dict) -> DatasetSpec:
        """Validate one ``detect.datasets.<name>`` entry; DataError naming the param otherwise."""
        check_name(name, "detect.datasets key")
        where = f"detect.datasets.{name}"
        missing = [k for k in ("train", "val", "labels", "format", "classes", "paper_classes") if k not in entry]
        if missing:
            raise DataError(f"params {where} lacks {', '.join(missing)}")
        spec = cls(
            name=name,
            train=str(entry["train"]),
            val=str(entry["val"]),
            labels=str(entry["labels"]),
            format=str(entry["format"]),
            classes=[str(c) for c in entry["classes"]],
            paper_classes=[str(c) for c in entry["paper_classes"]],
            source_classes=[str(c) for c in entry["source_classes"]] if entry.get("source_classes") else None,
            val_fraction=float(entry["val_fraction"]) if entry.get("val_fraction") is not None else None,
        )
        for key in ("train", "val"):
            check_name(getattr(spec, key), f"{where}.{key}")
        if spec.format not in FORMATS:
            raise DataError(f"params {where}.format is {spec.format!r}; expected one of {', '.join(FORMATS)}")
        if spec.format == "yolo" and spec.source_classes is None:
            raise DataError(f"params {where}.source_classes must name the class ids of its YOLO label files")
        unknown = [c for c in spec.paper_classes if c not in spec.classes]
        if unknown:
            raise DataError(f"params {where}.paper_classes {unknown} are not in its classes {spec.classes}")
        if spec.train == spec.val and not (spec.val_fraction and 0 < spec.val_fraction < 1):
            raise DataError(f"params {where}: train and val are both {spec.train!r}; set val_fraction in (0, 1)")
        return spec


@dataclass(frozen=True)
class BuiltDataset:
    """A YOLO dataset written for one dataset × method."""

    data_yaml: Path
    n_train: int
    n_val: int
    val_classes: frozenset[int]  # class ids with at least one box in the val labels


def split_ids(ids: list[str], val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Partition ``ids`` into (train, val), ``round(len·val_fraction)`` (at least 1) val ids drawn by a
    seeded permutation; the same for every method. Both lists sorted."""
    ids = sorted(ids)
    n_val = min(len(ids) - 1, max(1, round(len(ids) * val_fraction)))
    order = np.random.default_rng(seed).permutation(len(ids))
    val = {ids[i] for i in order[:n_val]}
    return [i for i in ids if i not in val], sorted(val)


def _split_ids(root: Path, spec: DatasetSpec, seed: int) -> dict[str, tuple[str, list[str]]]:
    """``{"train": (raw split, ids), "val": (raw split, ids)}`` from the raw pairs of the dataset."""

    def ids_of(split: str) -> list[str]:
        folder = root / "data/raw" / spec.name / split
        return [p.id for p in find_pairs(ir=folder / "ir", vi=folder / "vi")]

    if spec.train == spec.val:
        train, val = split_ids(ids_of(spec.train), spec.val_fraction or 0.0, seed)
        return {"train": (spec.train, train), "val": (spec.val, val)}
    return {"train": (spec.train, ids_of(spec.train)), "val": (spec.val, ids_of(spec.val))}


def _label_file(folder: Path, id_: str, fmt: str) -> Path | None:
    path = folder / f"{id_}.{'xml' if fmt == 'voc' else 'txt'}"
    return path if path.is_file() else None


def _check_class_names(labels_root: Path, folder: Path, spec: DatasetSpec) -> None:
    """The nearest ``classes.txt`` from ``folder`` up to ``labels_root`` must agree with source_classes."""
    for d in (folder, *folder.parents):
        candidate = d / "classes.txt"
        if candidate.is_file():
            names = read_class_names(candidate)
            if [n.lower() for n in names] != [n.lower() for n in spec.source_classes or []]:
                raise DataError(
                    f"{candidate} lists classes {names}, but params detect.datasets.{spec.name}.source_classes "
                    f"is {spec.source_classes}"
                )
            return
        if d == labels_root:
            return


def _link(src: Path, dst: Path) -> None:
    """``dst`` pointing at ``src`` (a symlink; a copy where links are not allowed)."""
    try:
        dst.symlink_to(src.resolve())
    except OSError:
        shutil.copy2(src, dst)


def build_dataset(root: Path, spec: DatasetSpec, method: str, out: Path, *, seed: int) -> BuiltDataset:
    """Write the YOLO dataset of ``method`` on ``spec`` to ``out`` (replaced atomically).

    Layout: ``images/{train,val}/<id>.<ext>`` (links to the method's images), ``labels/{train,val}/
    <id>.txt`` and ``data.yaml`` (absolute ``path``; names from ``spec.classes``). The labels are the
    dataset's, the same for every method. DataError naming the file for a missing method image or a
    bad label.
    """
    splits = _split_ids(root, spec, seed)
    dropped: dict[str, int] = {}
    val_classes: set[int] = set()
    with atomic_dir(out) as tmp:
        for part, (split, ids) in splits.items():
            images = index_images(method_images(root, method, spec.name, split))
            labels_root = root / "data/raw" / spec.name / split / "labels"
            labels = labels_root / spec.labels
            if not labels.is_dir():
                raise DataError(
                    f"label folder {labels} not found (params detect.datasets.{spec.name}.labels; "
                    "label sources: docs/downstream.md)"
                )
            if spec.format == "yolo":
                _check_class_names(labels_root, labels, spec)
            (tmp / "images" / part).mkdir(parents=True)
            unlabelled = 0
            for id_ in tqdm(ids, desc=f"{spec.name}/{method} {part}", unit="img", leave=False):
                if id_ not in images:
                    where = method_images(root, method, spec.name, split)
                    raise DataError(f"{where} has no image {id_} (pair {id_} of data/raw/{spec.name}/{split})")
                _link(images[id_], tmp / "images" / part / f"{id_}{images[id_].suffix}")
                src = _label_file(labels, id_, spec.format)
                unlabelled += src is None
                boxes, lost = convert_label(src, spec.format, spec.source_classes, spec.classes)
                for name, n in lost.items():
                    dropped[name] = dropped.get(name, 0) + n
                if part == "val":
                    val_classes.update(int(c) for c in boxes[:, 0])
                write_yolo(tmp / "labels" / part / f"{id_}.txt", boxes)
            if unlabelled:
                log.info(
                    "%s/%s: %d of %d images have no label file in %s (no objects)",
                    spec.name,
                    split,
                    unlabelled,
                    len(ids),
                    labels,
                )
        data = {
            "path": str(out.resolve()),
            "train": "images/train",
            "val": "images/val",
            "names": dict(enumerate(spec.classes)),
        }
        (tmp / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    if dropped:
        log.info("%s: boxes of classes outside %s left out: %s", spec.name, spec.classes, dropped)
    return BuiltDataset(out / "data.yaml", len(splits["train"][1]), len(splits["val"][1]), frozenset(val_classes))


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
    """Detector hyperparameters shared by every method (params ``detect``)."""

    model: str  # yolov5n | yolov5s | yolov5m | yolov5l | yolov5x
    weights: Path | None  # COCO checkpoint; None = random init
    epochs: int
    imgsz: int
    batch: int
    nbs: int
    warmup_epochs: float
    workers: int
    device: str  # ultralytics device string: "cpu" or a CUDA index
    amp: bool | str  # False or "bf16"
    seed: int

    def fingerprint(self) -> dict[str, Any]:
        """What a resumed run must share with the interrupted one."""
        return {
            "model": self.model,
            "weights": str(self.weights) if self.weights else None,
            "epochs": self.epochs,
            "imgsz": self.imgsz,
            "batch": self.batch,
            "nbs": self.nbs,
            "warmup_epochs": self.warmup_epochs,
            "amp": self.amp,
            "seed": self.seed,
        }


def resolve_model_weights(params: dict, root: Path) -> Path | None:
    """The COCO-pretrained checkpoint of ``params.model``: ``params.weights`` when set, else the
    registry's ``<model>u`` entry (models/pretrained/, downloaded when absent); None only when
    ``params.pretrained`` is false (random init). WeightsUnavailableError naming file, URL and param."""
    model = params["model"]
    if model not in {f"yolov5{s}" for s in MODEL_SIZES}:
        raise DataError(f"params detect.model is {model!r}; expected yolov5n, yolov5s, yolov5m, yolov5l or yolov5x")
    if not params.get("pretrained", True):
        log.warning("detect.pretrained is false: detectors start from random weights (smoke runs only)")
        return None
    return resolve_weights(f"{model}u", params.get("weights"), param="detect.weights", root=root)


def train_config(params: dict, root: Path) -> TrainConfig:
    """The :class:`TrainConfig` of params ``detect``; CUDA when ``device: auto`` finds one."""
    device = resolve_device(str(params.get("device", "auto")))
    amp = params.get("amp", "bf16")
    if amp not in ("bf16", "none"):
        raise DataError(f"params detect.amp is {amp!r}; expected bf16 or none")
    return TrainConfig(
        model=params["model"],
        weights=resolve_model_weights(params, root),
        epochs=int(params["epochs"]),
        imgsz=int(params["imgsz"]),
        batch=int(params["batch"]),
        nbs=int(params["nbs"]),
        warmup_epochs=float(params.get("warmup_epochs", 3.0)),
        workers=int(params.get("workers", 0)),
        device="cpu" if device.type == "cpu" else str(device.index or 0),
        amp="bf16" if amp == "bf16" and device.type == "cuda" else False,
        seed=int(params.get("seed", 0)),
    )


def run_identity(cfg: TrainConfig, data: BuiltDataset) -> dict[str, Any]:
    """The identity of a training run: ``params`` (its hyperparameters), ``images`` and ``labels``
    (content digests of the built dataset's images, read through their links, and label files; not the
    ``*.cache`` files ultralytics adds beside them)."""
    base = data.data_yaml.parent

    def files(folder: str, suffixes: tuple[str, ...]) -> dict[str, Path]:
        found = (p for p in (base / folder).rglob("*") if p.suffix.lower() in suffixes and p.is_file())
        return {p.relative_to(base).as_posix(): p for p in found}

    images, labels = files("images", IMAGE_EXTS), files("labels", (".txt",))
    return {"params": cfg.fingerprint(), "images": digest_files(images), "labels": digest_files(labels)}


def _read_state(run_dir: Path) -> dict[str, Any] | None:
    """The ``occo_run.json`` of ``run_dir`` (identity, recorded checkpoint, finished, validated), or None."""
    path = run_dir / _RUN_STATE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _write_state(run_dir: Path, state: dict[str, Any]) -> None:
    write_text_atomic(run_dir / _RUN_STATE, json.dumps(state, indent=2) + "\n")


def _record_checkpoint(run_dir: Path, state: dict[str, Any], last: Path, epochs: int) -> None:
    """Record ``last`` (its sha256 and the epochs it holds) as the checkpoint this run may resume from."""
    state["checkpoint"] = {"epochs": epochs, "sha256": sha256_file(last)}
    _write_state(run_dir, state)


def _stale(run_dir: Path, saved: dict[str, Any] | None, identity: dict[str, Any]) -> str | None:
    """Why ``run_dir`` cannot be reused or resumed (None: it can): no record, another identity, or a
    ``last.pt`` that is not the file recorded (missing, cut short by a kill, replaced)."""
    if saved is None:
        return f"it has no {_RUN_STATE}" if run_dir.exists() else "new run"
    if (reason := change_reason(saved.get("identity"), identity)) is not None:
        return f"{reason} since this run started"
    last, recorded = run_dir / "weights" / "last.pt", saved.get("checkpoint")
    if recorded is None:
        return "it was stopped before its first checkpoint"
    if not last.is_file() or sha256_file(last) != recorded["sha256"]:
        return f"{last} is missing or not the checkpoint this run recorded (cut short or replaced)"
    return None


def train_detector(cfg: TrainConfig, data: BuiltDataset, run_dir: Path) -> Path:
    """Train (or resume, or reuse) the detector of one dataset × method; returns its final ``last.pt``.

    ``run_dir/occo_run.json`` holds the run's :func:`run_identity` and the sha256 of ``weights/last.pt``
    after every epoch (ultralytics' ``on_model_save``) and at the end. A run with the same identity whose
    ``last.pt`` is the recorded file is reused when finished and resumed otherwise; any other run folder
    is deleted and trained from scratch, with the reason in the log.
    """
    from ultralytics import YOLO

    identity = run_identity(cfg, data)
    saved = _read_state(run_dir)
    last = run_dir / "weights" / "last.pt"
    reason = _stale(run_dir, saved, identity)
    if reason is None and saved["finished"]:
        log.info("%s: finished run found, not retraining", run_dir)
        return last
    common = {"data": str(data.data_yaml), "device": cfg.device, "workers": cfg.workers, "plots": False}
    start = time.perf_counter()
    if reason is None:
        state, done = saved, saved["checkpoint"]["epochs"]
        log.info("%s: resuming from %s after epoch %d of %d", run_dir, last, done, cfg.epochs)
        model, how = YOLO(str(last)), {"resume": True}
    else:
        if run_dir.exists():
            log.info("%s: %s; starting over", run_dir, reason)
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True)
        state, done = {"identity": identity, "checkpoint": None, "finished": False, "validated": False}, 0
        _write_state(run_dir, state)
        model = YOLO(f"{cfg.model}.yaml")
        how = {
            "pretrained": str(cfg.weights) if cfg.weights else False,
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
    model.add_callback("on_model_save", lambda trainer: _record_checkpoint(run_dir, state, last, trainer.epoch + 1))
    model.train(**common, **how)
    state["finished"] = True  # ultralytics rewrote last.pt at the end (optimizer stripped): record that file
    _record_checkpoint(run_dir, state, last, cfg.epochs)
    seconds = time.perf_counter() - start
    epochs = max(cfg.epochs - done, 1)
    log.info(
        "%s: %d epochs in %.1f s (%.2f s/epoch, device %s)", run_dir, epochs, seconds, seconds / epochs, cfg.device
    )
    return last


def validate_detector(weights: Path, cfg: TrainConfig, data: BuiltDataset, run_dir: Path) -> Any:
    """Test ``weights`` on the val split (ultralytics defaults: conf 0.001, NMS IoU 0.7); the DetMetrics."""
    from ultralytics import YOLO

    return YOLO(str(weights)).val(
        data=str(data.data_yaml),
        split="val",
        imgsz=cfg.imgsz,
        batch=cfg.batch,
        device=cfg.device,
        workers=cfg.workers,
        plots=False,
        project=str(run_dir.resolve()),
        name="val",
        exist_ok=True,
        verbose=False,
    )


def paper_mean(values: dict[str, float], classes: list[str]) -> float:
    """The paper's "all": ``mean_{c in classes ∩ values} values[c]`` (MSRS person and car, M3FD its six
    classes), over the classes that have boxes in the val split. DataError when none does."""
    chosen = [values[c] for c in classes if c in values]
    if not chosen:
        raise DataError(f"no box of {classes} in the val split: the paper's 'all' is undefined")
    return float(np.mean(chosen))


def detection_metrics(
    box: Any, spec: DatasetSpec, present: frozenset[int], *, epochs: int, imgsz: int, n_train: int, n_val: int
) -> dict[str, Any]:
    """The metrics JSON of one run from ultralytics' ``metrics.box``.

    Per-class AP@0.5 (``box.ap50``) and AP@0.5:0.95 (``box.ap``) come only for classes with boxes in
    the val labels (``present``), indexed through ``box.ap_class_index`` — never ``box.maps``, which
    fills absent classes with the overall mAP. ``all`` is :func:`paper_mean` over ``spec.paper_classes``.
    """
    index = [int(c) for c in box.ap_class_index]
    ap50: dict[str, float] = {}
    ap: dict[str, float] = {}
    for i, c in enumerate(index):
        if c in present:
            ap50[spec.classes[c]] = float(box.ap50[i])
            ap[spec.classes[c]] = float(box.ap[i])
    return {
        "ap50": {**ap50, "all": paper_mean(ap50, spec.paper_classes)},
        "ap50_95": {**ap, "all": paper_mean(ap, spec.paper_classes)},
        "epochs": int(epochs),
        "imgsz": int(imgsz),
        "n_train": int(n_train),
        "n_val": int(n_val),
    }


def markdown_table(results: dict[str, dict[str, Any]], spec: DatasetSpec) -> str:
    """Methods × classes table of AP@0.5 and AP@0.5:0.95 (percent), shaped like the paper's Tables 3–4;
    classes outside the paper's "all" follow it, marked with *."""
    classes = [c for c in spec.paper_classes if any(c in r["ap50"] for r in results.values())]
    extra = [c for c in spec.classes if c not in spec.paper_classes and any(c in r["ap50"] for r in results.values())]
    columns = [*classes, "all", *extra]
    head = [*classes, "all", *(f"{c}*" for c in extra)]
    lines = []
    for key, title in (("ap50", "AP@0.5"), ("ap50_95", "AP@0.5:0.95")):
        lines += [f"### {title} (%)", "", "| method | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
        for method, r in results.items():
            cells = [f"{100 * r[key][c]:.1f}" if c in r[key] else "–" for c in columns]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines.append("")
    if extra:
        lines.append(f"\\* not part of the paper's 'all' ({', '.join(spec.paper_classes)}).")
        lines.append("")
    return "\n".join(lines)


_OURS = Outputs(models=Path("models/detect"), metrics=Path("metrics/detect"), work=Path(".cache/occo/detect"))
OUTPUTS: dict[str | None, Outputs] = {
    None: _OURS,  # no part: every method, written where `ours` writes
    OURS: _OURS,
    REFERENCE: Outputs(
        models=Path("models/detect_reference"),
        metrics=Path("reference/detect"),
        work=Path(".cache/occo/detect_reference"),
    ),
}
"""Where each part writes (``None``: one call for every method, as outside the pipeline). ``work`` holds the
YOLO datasets: scratch that every run rebuilds from its declared inputs (links to the images, converted
labels, and the label caches ultralytics adds depending on whether it trains or only tests), so it is
kept out of the pipeline's outputs and of git under .cache/."""


def run_detect(
    params: dict,
    root: Path,
    *,
    dataset: str | None = None,
    method: str | None = None,
    part: str | None = None,
    write_tables: bool = True,
) -> dict[str, dict[str, dict[str, Any]]]:
    """The ``detect`` stage: every ``params.run`` dataset × ``params.methods``; returns the metrics.

    ``dataset`` / ``method`` restrict the call to one entry of ``detect.run`` / ``detect.methods``
    (None: all). ``part`` runs one half of the pipeline's stage (:func:`part_methods`): ``reference``
    trains only the source modalities and published methods into :data:`OUTPUTS` ``reference``;
    ``ours`` trains the others and returns (and writes to ``metrics/detect``) every method, the
    reference ones read from ``reference/detect``. Each method's outputs — its metrics JSON, model
    folder and YOLO dataset — depend only on that method's images, the labels and ``detect`` params,
    never on which other methods ran in the same call. ``write_tables`` writes
    ``reports/detect/<dataset>.md`` (:func:`markdown_table` of the returned methods; never for
    ``reference``). Datasets not imported (no ``data/raw/<name>/<split>``) are skipped with a warning; a
    method whose metrics file exists and whose run is finished and validated with the same identity is
    not run again.
    """
    root = Path(root)
    for entry in params["methods"]:  # not `method`: that is the restriction argument
        check_name(entry, "detect.methods entry")
    prepare_ultralytics(root)
    specs = params.get("datasets") or {}
    names = select(params.get("run") or [], dataset, "detect.run")
    methods = select(params["methods"], method, "detect.methods")
    trained = part_methods(root, methods, part)
    outputs = OUTPUTS[part]
    cfg: TrainConfig | None = None
    all_results: dict[str, dict[str, dict[str, Any]]] = {}
    for folder in (outputs.metrics, outputs.models, outputs.work):  # DVC's outputs, even with nothing to train
        (root / folder).mkdir(parents=True, exist_ok=True)
    for name in names:
        if name not in specs:
            raise DataError(f"params detect.run names {name!r}, which detect.datasets does not define")
        spec = DatasetSpec.from_params(name, specs[name])
        missing = [s for s in sorted({spec.train, spec.val}) if not (root / "data/raw" / name / s).is_dir()]
        if missing:
            log.warning("detect: skipping %s: no split %s in data/raw/%s", name, ", ".join(missing), name)
            continue
        cfg = cfg or train_config(params, root)
        results = {m: detect_method(cfg, spec, m, root, outputs) for m in trained}
        if part == OURS:
            results = gather_reference(root, outputs, OUTPUTS[REFERENCE], name, methods, results)
        if write_tables and part != REFERENCE:
            title = f"## {name} detection ({spec.val} split)\n\n"
            write_text_atomic(root / f"reports/detect/{name}.md", title + markdown_table(results, spec))
            log.info("wrote reports/detect/%s.md", name)
        all_results[name] = results
    return all_results


def detect_method(
    cfg: TrainConfig, spec: DatasetSpec, method: str, root: Path, outputs: Outputs = OUTPUTS[None]
) -> dict[str, Any]:
    """Build, train (or resume, or reuse) and test the detector of ``method`` on ``spec``; write and
    return its metrics (``<outputs.metrics>/<dataset>/<method>.json``)."""
    name = spec.name
    data = build_dataset(root, spec, method, root / outputs.work / name / method, seed=cfg.seed)
    run_dir = root / outputs.models / name / method
    out = root / outputs.metrics / name / f"{method}.json"
    last = train_detector(cfg, data, run_dir)
    state = _read_state(run_dir)
    if out.is_file() and state["validated"]:
        log.info("%s/%s: metrics already in %s", name, method, out)
        return json.loads(out.read_text(encoding="utf-8"))
    box = validate_detector(last, cfg, data, run_dir).box
    result = detection_metrics(
        box, spec, data.val_classes, epochs=cfg.epochs, imgsz=cfg.imgsz, n_train=data.n_train, n_val=data.n_val
    )
    write_text_atomic(out, json.dumps(result, indent=2) + "\n")
    _write_state(run_dir, {**state, "validated": True})
    log.info(
        "%s/%s: AP50 all %.3f, AP50:95 all %.3f -> %s",
        name,
        method,
        result["ap50"]["all"],
        result["ap50_95"]["all"],
        out,
    )
    return result
