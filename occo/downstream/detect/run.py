"""The detection stage: every dataset × method built, trained (or resumed, or reused), tested and tabled.

For every dataset × method (``occo``, ``visible``, ``infrared``, published methods) a YOLO dataset
is built under ``.cache/occo/detect/<dataset>/<method>/`` (scratch, rebuilt by every run;
:mod:`~occo.downstream.detect.data`) and a detector is trained from the same initial weights,
hyperparameters and seed, then tested on the shared val split (:mod:`~occo.downstream.detect.train`).
Runs live in ``models/detect/<dataset>/<method>/`` (ultralytics' ``weights/last.pt``), metrics go to
``metrics/detect/<dataset>/<method>.json`` (:mod:`~occo.downstream.detect.scores`). The pipeline splits
this in two parts (:data:`DETECT_OUTPUTS`): ``reference`` (source modalities and published methods, trained
once, under ``models/detect_reference`` and ``reference/detect``) and ``ours`` (our fused images; it
also gathers the reference results into ``metrics/detect``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from occo.config import Detect, DetectDataset
from occo.data.io import write_text_atomic
from occo.downstream.detect.data import build_dataset
from occo.downstream.detect.scores import detection_metrics, detection_table
from occo.downstream.detect.train import (
    TrainConfig,
    prepare_ultralytics,
    read_run_state,
    train_config,
    train_detector,
    validate_detector,
    write_run_state,
)
from occo.pipeline.sources import OURS, REFERENCE, Outputs, gather_reference, part_methods, select

log = logging.getLogger(__name__)

SKIPPED = Path("reports/detect/skipped.json")
"""``{dataset: why}`` for every dataset of ``detect.run`` the stage could not train on (the report says why)."""
_OURS = Outputs(models=Path("models/detect"), metrics=Path("metrics/detect"), work=Path(".cache/occo/detect"))
DETECT_OUTPUTS: dict[str | None, Outputs] = {
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
    cfg: Detect,
    root: Path,
    *,
    dataset: str | None = None,
    method: str | None = None,
    part: str | None = None,
    write_tables: bool = True,
) -> dict[str, dict[str, dict[str, Any]]]:
    """The ``detect`` stage: every ``cfg.run`` dataset × ``cfg.methods``; returns the metrics.

    ``dataset`` / ``method`` restrict the call to one entry of ``detect.run`` / ``detect.methods``
    (None: all). ``part`` runs one half of the pipeline's stage (:func:`part_methods`): ``reference``
    trains only the source modalities and published methods into :data:`DETECT_OUTPUTS` ``reference``;
    ``ours`` trains the others and returns (and writes to ``metrics/detect``) every method, the
    reference ones read from ``reference/detect``. Each method's outputs — its metrics JSON, model
    folder and YOLO dataset — depend only on that method's images, the labels and ``detect`` params,
    never on which other methods ran in the same call. ``write_tables`` writes
    ``reports/detect/<dataset>.md`` (:func:`detection_table` of the returned methods) and :data:`SKIPPED` (never for
    ``reference``). Datasets not imported (no ``data/raw/<name>/<split>``) are skipped with a warning; a
    method whose metrics file exists and whose run is finished and validated with the same identity is
    not run again.
    """
    root = Path(root)
    prepare_ultralytics(root)
    names = select(cfg.run, dataset, "detect.run")
    methods = select(cfg.methods, method, "detect.methods")
    trained = part_methods(root, methods, part)
    outputs = DETECT_OUTPUTS[part]
    train_cfg: TrainConfig | None = None
    all_results: dict[str, dict[str, dict[str, Any]]] = {}
    skipped: dict[str, str] = {}
    for folder in (outputs.metrics, outputs.models, outputs.work):  # DVC's outputs, even with nothing to train
        (root / folder).mkdir(parents=True, exist_ok=True)
    for name in names:
        spec = cfg.datasets[name]
        missing = [s for s in sorted({spec.train, spec.val}) if not (root / "data/raw" / name / s).is_dir()]
        if missing:
            skipped[name] = (
                f"data/raw/{name} has no {' and no '.join(missing)} split, which detect.datasets.{name} "
                f"trains on ({spec.train}) or tests on ({spec.val})"
                if (root / "data/raw" / name).is_dir()
                else f"{name} was not imported: download.datasets.{name} is absent or its source was not found"
            )
            log.warning("detect: skipping %s: %s", name, skipped[name])
            continue
        train_cfg = train_cfg or train_config(cfg, root)
        results = {m: detect_method(train_cfg, name, spec, m, root, outputs) for m in trained}
        if part == OURS:
            results = gather_reference(root, outputs, DETECT_OUTPUTS[REFERENCE], name, methods, results)
        if write_tables and part != REFERENCE:
            title = f"## {name} detection ({spec.val} split)\n\n"
            write_text_atomic(root / f"reports/detect/{name}.md", title + detection_table(results, spec))
            log.info("wrote reports/detect/%s.md", name)
        all_results[name] = results
    if write_tables and part != REFERENCE:
        write_text_atomic(root / SKIPPED, json.dumps(skipped, indent=2, sort_keys=True) + "\n")
    return all_results


def detect_method(
    cfg: TrainConfig,
    dataset: str,
    spec: DetectDataset,
    method: str,
    root: Path,
    outputs: Outputs,
) -> dict[str, Any]:
    """Build, train (or resume, or reuse) and test the detector of ``method`` on ``dataset``; write and
    return its metrics (``<outputs.metrics>/<dataset>/<method>.json``)."""
    data = build_dataset(root, dataset, spec, method, root / outputs.work / dataset / method, seed=cfg.seed)
    run_dir = root / outputs.models / dataset / method
    out = root / outputs.metrics / dataset / f"{method}.json"
    last = train_detector(cfg, data, run_dir)
    state = read_run_state(run_dir)
    if out.is_file() and state["validated"]:
        log.info("%s/%s: metrics already in %s", dataset, method, out)
        return json.loads(out.read_text(encoding="utf-8"))
    box = validate_detector(last, cfg, data, run_dir).box
    result = detection_metrics(
        box, spec, data.val_classes, epochs=cfg.epochs, imgsz=cfg.imgsz, n_train=data.n_train, n_val=data.n_val
    )
    write_text_atomic(out, json.dumps(result, indent=2) + "\n")
    write_run_state(run_dir, {**state, "validated": True})
    log.info(
        "%s/%s: AP50 all %.3f, AP50:95 all %.3f -> %s",
        dataset,
        method,
        result["ap50"]["all"],
        result["ap50_95"]["all"],
        out,
    )
    return result
