"""Detection scores: the metrics JSON of one run and the methods × classes table (paper Tables 4–5)."""

from __future__ import annotations

from typing import Any

import numpy as np

from occo.config import DetectDataset
from occo.data.io import DataError


def paper_mean(values: dict[str, float], classes: list[str]) -> float:
    """The paper's "all": ``mean_{c in classes ∩ values} values[c]`` (MSRS person and car, M3FD its six
    classes), over the classes that have boxes in the val split. DataError when none does."""
    chosen = [values[c] for c in classes if c in values]
    if not chosen:
        raise DataError(f"no box of {classes} in the val split: the paper's 'all' is undefined")
    return float(np.mean(chosen))


def detection_metrics(
    box: Any, spec: DetectDataset, present: frozenset[int], *, epochs: int, imgsz: int, n_train: int, n_val: int
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


def detection_table(results: dict[str, dict[str, Any]], spec: DetectDataset) -> str:
    """Methods × classes table of AP@0.5 and AP@0.5:0.95 (percent), shaped like the paper's Tables 4–5;
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
