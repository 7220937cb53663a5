"""The segmentation stage: every method's segmenter trained and tested on one dataset, and the table.

Protocol of OCCO §4.3 (after TarDAL/CoCoNet): every method in ``segment.methods`` (``occo``, the
``visible`` and ``infrared`` source images, published fused folders) trains its own DeepLabV3+ on its
own images of ``segment.train_split``, from the same initial weights (ImageNet encoder + decoder drawn
from ``segment.seed``) with the same hyperparameters and seed, and is tested on the shared
``segment.test_split`` labels.

Per method, under the repository root:
  models/segment/<dataset>/<method>/last.pt    resumable state after every epoch (model, optimiser,
                                               schedule, scaler, RNG, run identity: params and content
                                               digests of the method's training images and labels),
  models/segment/<dataset>/<method>/model.pt   final weights and the model config,
  dvclive/segment/<dataset>/<method>/          training loss and lr per epoch, test IoU at the end,
  metrics/segment/<dataset>/<method>.json      {"iou": {class: IoU}, "miou", "epochs", "n_train", "n_test"},
and reports/segment/<dataset>.md, the methods × classes table (IoU in %) shaped like the paper's. The
pipeline splits the methods in two parts (:data:`SEGMENT_OUTPUTS`): ``reference`` (source modalities and published
methods, trained once, under ``models/segment_reference``, ``dvclive/segment_reference``,
``reference/segment``) and ``ours`` (our fused images; it also gathers the reference results).
A method's outputs depend only on its own images, the labels and ``segment`` params. ``last.pt`` is
resumed (or, when it holds every epoch, only tested) only under the same identity; otherwise the method
trains from scratch and the log names what changed (params, images or labels).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from occo.config import Segment
from occo.data import write_text_atomic
from occo.downstream.segment.data import labels_dir
from occo.downstream.segment.scores import segmentation_table
from occo.downstream.segment.train import train_method
from occo.pipeline.sources import OURS, REFERENCE, Outputs, gather_reference, part_methods, select

log = logging.getLogger(__name__)

REPORT_DIR = Path("reports/segment")
SKIPPED = REPORT_DIR / "skipped.json"
"""``{dataset: why}`` when the stage could not train on ``segment.dataset`` (the report says why)."""
_OURS = Outputs(models=Path("models/segment"), metrics=Path("metrics/segment"), work=Path("dvclive/segment"))
SEGMENT_OUTPUTS: dict[str | None, Outputs] = {
    None: _OURS,  # no part: every method, written where `ours` writes
    OURS: _OURS,
    REFERENCE: Outputs(
        models=Path("models/segment_reference"),
        metrics=Path("reference/segment"),
        work=Path("dvclive/segment_reference"),
    ),
}
"""Where each part writes: model folders, metrics, training curves (``None``: one call for every method)."""


def run_segment(
    cfg: Segment,
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
    trains the source modalities and published methods into :data:`SEGMENT_OUTPUTS` ``reference``; ``ours``
    trains the others and returns (and writes to ``metrics/segment``) every method, the reference ones
    read from ``reference/segment``. ``write_tables`` writes ``reports/segment/<dataset>.md``
    (:func:`segmentation_table` of the returned methods) and :data:`SKIPPED` (never for ``reference``). A
    dataset without segmentation labels in its train or test split is skipped with a warning, and why in
    :data:`SKIPPED` (returns ``{}``). The output folders are created either way, so DVC always finds its outputs.
    """
    root = Path(root)
    (name,) = select([cfg.dataset], dataset, "segment.dataset")
    methods = select(cfg.methods, method, "segment.methods")
    outputs = SEGMENT_OUTPUTS[part]
    for folder in (outputs.metrics, outputs.models, outputs.work, *(() if part == REFERENCE else (REPORT_DIR,))):
        (root / folder).mkdir(parents=True, exist_ok=True)
    skipped = {}
    for split in (cfg.train_split, cfg.test_split):
        if not labels_dir(root, name, split).is_dir():
            where = labels_dir(root, name, split).relative_to(root)
            role = "train_split" if split == cfg.train_split else "test_split"
            skipped[name] = (
                f"no segmentation labels in its {split} split (segment.{role}): {where} does not exist"
                if (root / "data/raw" / name / split).is_dir()
                else f"data/raw/{name} has no {split} split (segment.{role})"
            )
            log.warning("skipping segmentation: %s; set segment.dataset to a dataset imported with labels/seg", where)
            break
    if write_tables and part != REFERENCE:
        write_text_atomic(root / SKIPPED, json.dumps(skipped, indent=2, sort_keys=True) + "\n")
    if skipped:
        return {}
    results = {m: train_method(cfg, root, m, name, outputs) for m in part_methods(root, methods, part)}
    if part == OURS:
        results = gather_reference(root, outputs, SEGMENT_OUTPUTS[REFERENCE], name, methods, results)
    if write_tables and part != REFERENCE:
        title = f"{name} {cfg.test_split}, DeepLabV3+ {cfg.encoder}, {cfg.epochs} epochs"
        write_text_atomic(root / REPORT_DIR / f"{name}.md", segmentation_table(results, title=title))
        log.info("wrote %s", root / REPORT_DIR / f"{name}.md")
    return results
