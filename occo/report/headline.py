"""The run's headline numbers as one flat dict (``metrics/headline.json``, a DVC metrics file).

Keys: ``<dataset>.EN`` / ``.SF`` / ``.AG`` / ``.CC`` (our fusion on each evaluated set),
``<dataset>.detect.ap50`` / ``.detect.ap50_95`` (the paper's "all" column) and
``<dataset>.segment.miou``. A value the run did not produce is left out, never written as null.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from occo.data.io import write_text_atomic
from occo.report.collect import Collected, collect_metrics

FUSION_KEYS = ("EN", "SF", "AG", "CC")  # the paper's Tables 1-2
HEADLINE = Path("metrics/headline.json")
TRAINED = "occo"  # the method name of our trained model's fused images (stages/fuse.py)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return None
    return float(value)


def headline(data: Collected, method: str = TRAINED) -> dict[str, float]:
    """``method``'s fusion metrics, detection mAP ("all") and segmentation mIoU, keyed flat by dataset."""
    out: dict[str, float | None] = {}
    for dataset, frame in data.fusion.items():
        if method in frame.index:
            out |= {f"{dataset}.{m}": _number(frame.at[method, m]) for m in FUSION_KEYS}
    for dataset, records in data.detect.items():
        if record := records.get(method):
            out[f"{dataset}.detect.ap50"] = _number(record["ap50"].get("all"))
            out[f"{dataset}.detect.ap50_95"] = _number(record["ap50_95"].get("all"))
    for dataset, records in data.segment.items():
        if record := records.get(method):
            out[f"{dataset}.segment.miou"] = _number(record["miou"])
    return {k: v for k, v in out.items() if v is not None}


def write_headline(root: Path, method: str = TRAINED) -> Path:
    """Write ``root/metrics/headline.json`` from metrics/fusion, metrics/detect and metrics/segment."""
    path = Path(root) / HEADLINE
    write_text_atomic(path, json.dumps(headline(collect_metrics(Path(root)), method), indent=2) + "\n")
    return path
