"""What each model of the run was trained on, against the split the paper used, and why a task did not run.

The report opens with it: a run on a slice of the data (the sample pairs of ../shared, a smoke or a
rehearsal) exercises the code, not the method, and must say so before any table. The fusion network's
pairs come from its dvclive summary (``pairs``), the detectors' and segmenters' from their metrics
(``n_train``, ``n_val``/``n_test``); the whole split's size from the registry (``occo.fetch.registry``);
why a downstream task skipped a dataset from the stage's own record (``reports/<task>/skipped.json``).
"""

from __future__ import annotations

from dataclasses import dataclass

from occo.config import Params
from occo.fetch.registry import full_split
from occo.pipeline.inputs import held_out
from occo.report.collect import Collected
from occo.report.paper.reference import PaperReference
from occo.report.render.document import Block, Bullets, Heading, Paragraph

PAPER_TRAINING_SET = ("FMB", "train")
"""The fusion network's training set in the paper (§4.1.1: trained on FMB, whose train split holds 1,220 pairs)."""
TASKS = {"detect": "Detection", "segment": "Segmentation"}


@dataclass(frozen=True)
class Usage:
    """One line of the section, and whether it departs from the paper's experiment."""

    text: str
    departs: bool


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def fusion_usage(cfg: Params, data: Collected) -> Usage:
    """How many pairs and steps the fusion network was trained on, against FMB's whole train split."""
    train = cfg.train
    where = f"{train.dataset}/{train.split}"
    summary = data.train_summary or {}
    if "pairs" not in summary:
        return Usage("Fusion network: not trained in this run (no `pairs` in dvclive/train/metrics.json).", True)
    pairs, steps = int(summary["pairs"]), summary.get("step")
    done = f"trained on {plural(pairs, 'pair')} of {where}" + (f" for {plural(int(steps), 'step')}" if steps else "")
    paper = "/".join(PAPER_TRAINING_SET)
    full = full_split(*PAPER_TRAINING_SET)
    if (train.dataset, train.split) == PAPER_TRAINING_SET and full is not None and pairs >= full:
        return Usage(f"Fusion network: {done}, the paper's training set.", False)
    whole = f", all {full:,} of its pairs" if full else ""
    return Usage(f"Fusion network: {done}. **Not the paper's experiment**: the paper trains on {paper}{whole}.", True)


def _train_split_size(cfg: Params, task: str, dataset: str) -> tuple[str, int | None]:
    """The split a task trains on for ``dataset`` and its full size (what the registry records, less what is
    held out for testing when one split is divided)."""
    if task == "segment":
        return cfg.segment.train_split, full_split(dataset, cfg.segment.train_split)
    spec = cfg.detect.datasets[dataset]
    full = full_split(dataset, spec.train)
    if full is not None and spec.train == spec.val:
        full -= held_out(full, spec.val_fraction or 0.0)
    return spec.train, full


def downstream_usage(
    cfg: Params, task: str, dataset: str, per_method: dict[str, dict], paper: PaperReference | None
) -> Usage:
    """What one dataset's models of ``task`` were trained and tested on (``per_method``: their metrics records),
    against the paper's split."""
    first = next(iter(per_method.values()))
    n_train, n_test = int(first.get("n_train", 0)), int(first.get("n_val", first.get("n_test", 0)))
    split, full = _train_split_size(cfg, task, dataset)
    done = (
        f"{TASKS[task]}, {dataset}: each method's model trained on {plural(n_train, 'image')} of {dataset}/{split}, "
        f"tested on {n_test:,}"
    )
    in_paper = paper is not None and paper.find(task, dataset) is not None
    if not in_paper:
        return Usage(f"{done} ({dataset} is not one of the paper's {TASKS[task].lower()} sets).", True)
    if full is not None and n_train >= full:
        return Usage(f"{done}, the paper's training set.", False)
    whole = f": {dataset}/{split} holds {full:,}" if full else ""
    return Usage(f"{done}. **Not the paper's experiment**{whole}.", True)


def task_usages(cfg: Params, data: Collected, paper: PaperReference | None) -> list[Usage]:
    """Per downstream task and dataset: what its models trained on, or why the stage skipped it."""
    usages = []
    for task, title in TASKS.items():
        records = data.detect if task == "detect" else data.segment
        for dataset, per_method in records.items():
            usages.append(downstream_usage(cfg, task, dataset, per_method, paper))
        for dataset, why in data.skipped.get(task, {}).items():
            usages.append(Usage(f"{title}, {dataset}: skipped by the {task} stage: {why}.", True))
        if not records and task not in data.skipped:
            usages.append(Usage(f"{title}: the {task} stage has not run.", True))
    return usages


def data_section(cfg: Params, data: Collected, paper: PaperReference | None) -> list[Block]:
    """ "Data": how many pairs each model was trained on, whether that is the paper's experiment, and why a task
    did not run."""
    usages = [fusion_usage(cfg, data), *task_usages(cfg, data, paper)]
    lead = (
        "**This run is not the paper's experiment**: some models were trained on less data than the paper's, or on "
        "other sets (below). Its numbers exercise the pipeline; they are not comparable with Tables 1–9."
        if any(u.departs for u in usages)
        else "Every model was trained on the split the paper used."
    )
    return [Heading("Data"), Paragraph(lead), Bullets(tuple(u.text for u in usages))]
