"""Read every metrics file the pipeline wrote into tidy tables (rows = methods, columns = metrics).

Each input may be absent (the stage that writes it did not run): the reader then returns an empty
mapping or None, and the report says "not run". A file that exists but is malformed raises DataError
naming it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from occo.data.io import DataError
from occo.metrics.evaluate import parse_rows
from occo.metrics.suite import METRICS

FUSION_DIR = Path("metrics/fusion")
FUSION_ROWS_DIR = Path("reports/fusion")
DETECT_DIR = Path("metrics/detect")
SEGMENT_DIR = Path("metrics/segment")
TRAIN_METRICS = Path("dvclive/train/metrics.json")
TRAIN_PLOTS = Path("dvclive/train/plots/metrics")
SKIPPED = {"detect": Path("reports/detect/skipped.json"), "segment": Path("reports/segment/skipped.json")}
"""Where the detect and segment stages say why they skipped a dataset: ``{dataset: why}``."""


@dataclass
class Collected:
    """Everything the report shows, keyed by dataset then method."""

    fusion: dict[str, pd.DataFrame] = field(default_factory=dict)
    fusion_rows: dict[str, list[dict]] = field(default_factory=dict)  # per-image scores (method, id, metrics)
    detect: dict[str, dict[str, dict]] = field(default_factory=dict)
    segment: dict[str, dict[str, dict]] = field(default_factory=dict)
    train_summary: dict | None = None
    curves: dict[str, pd.DataFrame] = field(default_factory=dict)
    skipped: dict[str, dict[str, str]] = field(default_factory=dict)  # task -> {dataset: why the stage skipped it}


def read_json(path: Path) -> dict:
    """A JSON object from ``path``; unreadable or non-object content raises DataError naming it."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read metrics file {path}: {err}") from None
    if not isinstance(doc, dict):
        raise DataError(f"metrics file {path} must hold a JSON object, got {type(doc).__name__}")
    return doc


def fusion_frame(doc: dict, path: Path) -> pd.DataFrame:
    """``{method: {EN: …, n: …}}`` as a frame: index = methods (file order), columns = METRICS + n."""
    rows = {}
    for method, values in doc.items():
        if not isinstance(values, dict) or "n" not in values:
            raise DataError(f"{path}: entry {method!r} must be an object of metric means with 'n'")
        bad = [m for m in METRICS if values.get(m) is not None and not isinstance(values[m], (int, float))]
        if bad:
            raise DataError(f"{path}: {method!r} has non-numeric {', '.join(bad)}")
        rows[method] = {m: values.get(m) for m in METRICS} | {"n": int(values["n"])}
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=[*METRICS, "n"])
    frame[list(METRICS)] = frame[list(METRICS)].astype(float)
    return frame


def collect_fusion(root: Path) -> dict[str, pd.DataFrame]:
    """Every ``metrics/fusion/<dataset>.json`` as a frame, by dataset name."""
    folder = root / FUSION_DIR
    paths = sorted(folder.glob("*.json")) if folder.is_dir() else []
    return {path.stem: fusion_frame(read_json(path), path) for path in paths}


def collect_fusion_rows(root: Path) -> dict[str, list[dict]]:
    """Every ``reports/fusion/<dataset>.csv`` (the evaluate stage's per-image scores) as rows, by dataset."""
    folder = root / FUSION_ROWS_DIR
    found = {}
    for path in sorted(folder.glob("*.csv")) if folder.is_dir() else []:
        try:
            found[path.stem] = parse_rows(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise DataError(f"cannot read per-image scores {path}: {err}") from None
    return found


def _check_downstream(doc: dict, path: Path, keys: tuple[str, ...]) -> dict:
    missing = [k for k in keys if k not in doc]
    if missing:
        raise DataError(f"{path}: missing {', '.join(missing)}")
    for key in keys:
        if isinstance(doc[key], dict):
            bad = [c for c, v in doc[key].items() if v is not None and not isinstance(v, (int, float))]
            if bad:
                raise DataError(f"{path}: {key} has non-numeric values for {', '.join(bad)}")
    return doc


def collect_downstream(root: Path, folder: Path, keys: tuple[str, ...]) -> dict[str, dict[str, dict]]:
    """``<folder>/<dataset>/<method>.json`` files as ``{dataset: {method: record}}``."""
    base = root / folder
    found: dict[str, dict[str, dict]] = {}
    for path in sorted(base.glob("*/*.json")) if base.is_dir() else []:
        found.setdefault(path.parent.name, {})[path.stem] = _check_downstream(read_json(path), path, keys)
    return found


def detect_frame(records: dict[str, dict]) -> pd.DataFrame:
    """Detection table: one AP50 column per class, then mAP50 (all classes) and mAP50-95."""
    classes = list(dict.fromkeys(c for r in records.values() for c in r["ap50"] if c != "all"))
    rows = {
        method: {c: r["ap50"].get(c) for c in classes}
        | {"mAP50": r["ap50"].get("all"), "mAP50-95": r["ap50_95"].get("all")}
        for method, r in records.items()
    }
    return pd.DataFrame.from_dict(rows, orient="index", columns=[*classes, "mAP50", "mAP50-95"]).astype(float)


def segment_frame(records: dict[str, dict]) -> pd.DataFrame:
    """Segmentation table: one IoU column per class, then mIoU."""
    classes = list(dict.fromkeys(c for r in records.values() for c in r["iou"]))
    rows = {method: {c: r["iou"].get(c) for c in classes} | {"mIoU": r["miou"]} for method, r in records.items()}
    return pd.DataFrame.from_dict(rows, orient="index", columns=[*classes, "mIoU"]).astype(float)


def read_curve(path: Path) -> pd.DataFrame:
    """A dvclive metric TSV (``[timestamp] step <name>``) as a frame with columns step, value."""
    try:
        frame = pd.read_csv(path, sep="\t")
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read training log {path}: {err}") from None
    value = [c for c in frame.columns if c not in ("step", "timestamp")]
    if "step" not in frame.columns or len(value) != 1:
        raise DataError(
            f"training log {path} must have a 'step' column and one value column, got {list(frame.columns)}"
        )
    return pd.DataFrame({"step": frame["step"].astype(int), "value": frame[value[0]].astype(float)})


def collect_training(root: Path) -> tuple[dict | None, dict[str, pd.DataFrame]]:
    """dvclive's final metrics (None when training did not run) and every logged curve by name."""
    summary_path = root / TRAIN_METRICS
    summary = read_json(summary_path) if summary_path.is_file() else None
    folder = root / TRAIN_PLOTS
    paths = sorted(folder.rglob("*.tsv")) if folder.is_dir() else []
    return summary, {path.relative_to(folder).with_suffix("").as_posix(): read_curve(path) for path in paths}


def collect_metrics(root: Path) -> Collected:
    """The metrics files under ``root`` (metrics/fusion, metrics/detect, metrics/segment), no training log."""
    return Collected(
        fusion=collect_fusion(root),
        detect=collect_downstream(root, DETECT_DIR, ("ap50", "ap50_95")),
        segment=collect_downstream(root, SEGMENT_DIR, ("iou", "miou")),
    )


def collect_skipped(root: Path) -> dict[str, dict[str, str]]:
    """``{task: {dataset: why}}`` from :data:`SKIPPED` (a task whose stage has not run is absent)."""
    found = {}
    for task, path in SKIPPED.items():
        if (root / path).is_file():
            doc = read_json(root / path)
            if not all(isinstance(v, str) for v in doc.values()):
                raise DataError(f"{root / path}: every value must be a reason (text)")
            found[task] = doc
    return found


def collect(root: Path) -> Collected:
    """Read all report inputs under the repository ``root``."""
    summary, curves = collect_training(root)
    return replace(
        collect_metrics(root),
        fusion_rows=collect_fusion_rows(root),
        train_summary=summary,
        curves=curves,
        skipped=collect_skipped(root),
    )
