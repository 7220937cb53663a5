"""Stages `evaluate_reference` and `evaluate`: every method's fusion metrics on every imported dataset.

The reference part scores what no experiment changes (the pixel baselines, published methods under
data/external and the folders of ``evaluate.external``) once, into reference/fusion/<dataset>.{json,csv}.
The ours part scores data/fused/<Method>/ (OCCO and extra checkpoints) and merges both into
metrics/fusion/<dataset>.json (each method's means over the images it was scored on, with their count
``n``), reports/fusion/<dataset>.csv (per image) and .md (tables shaped like the paper's Tables 1-2, every
method in a table compared on the same images: ``occo.metrics.evaluate.fair_tables``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from occo.config import Evaluate
from occo.data.io import DataError, write_text_atomic
from occo.data.names import check_name
from occo.data.pairs import Pair, find_pairs
from occo.metrics.evaluate import ScoreRow, fair_tables, parse_rows, rows_to_csv, score_pairs, summarise
from occo.pipeline.shard import WHOLE, Shard, ShardedStage, fragment_path, read_fragments, remove_fragments
from occo.pipeline.sources import FUSED, OURS, PUBLISHED, REFERENCE, method_folders

log = logging.getLogger(__name__)

REFERENCE_SCORES = Path("reference/fusion")


def reference_methods(cfg: Evaluate, root: Path, dataset: str, split: str) -> dict[str, Path | None]:
    """Baselines first, then published methods under data/external, then the folders of ``evaluate.external``."""
    methods: dict[str, Path | None] = {name: None for name in cfg.baselines}
    methods |= method_folders(root / PUBLISHED, dataset, split)
    for method, per_dataset in cfg.external.items():
        if dataset in per_dataset:
            if method in methods:
                raise DataError(
                    f"evaluate.external.{method}: {root / PUBLISHED / method} holds published results of that name; "
                    "rename the entry"
                )
            methods[method] = (root / per_dataset[dataset]).resolve()
    return methods


def evaluation_splits(cfg: Evaluate, root: Path, *, warn: bool = True) -> dict[str, str]:
    """``{dataset: split}`` for every imported dataset that has its evaluation split (others warned about when
    ``warn``: the merge of a part leaves that to its shards)."""
    index = json.loads((root / "data/raw/INDEX.json").read_text(encoding="utf-8"))
    chosen = {}
    for dataset, splits in index.items():
        check_name(dataset, "dataset of data/raw/INDEX.json")
        split = cfg.split_of(dataset)
        if split not in splits:
            if warn:
                log.warning(
                    "%s has no %r split (has %s); set evaluate.splits.%s", dataset, split, sorted(splits), dataset
                )
            continue
        chosen[dataset] = split
    return chosen


def _pairs(root: Path, dataset: str, split: str) -> list[Pair]:
    """The registered pairs of data/raw/<dataset>/<split>."""
    data = root / "data/raw" / dataset / split
    return find_pairs(ir=data / "ir", vi=data / "vi")


def _score_methods(cfg: Evaluate, pairs: list[Pair], methods: dict[str, Path | None], desc: str) -> list[ScoreRow]:
    """Every method's per-image scores on ``pairs`` with the section's variant, device and batch size."""
    return score_pairs(pairs, methods, variant=cfg.variant, device=cfg.device, batch_size=cfg.batch_size, desc=desc)


def _merged(root: Path, part: str, dataset: str, count: int, methods: dict[str, Path | None]) -> list[ScoreRow]:
    """The rows ``count`` shards left for ``dataset``, in :func:`score_pairs`'s order (method, then id)."""
    rows = [row for text in read_fragments(root, part, dataset, count) for row in parse_rows(text)]
    rank = {m: i for i, m in enumerate(methods)}
    return sorted(rows, key=lambda row: (rank[row["method"]], row["id"]))


def score_reference(cfg: Evaluate, root: Path, shard: Shard = WHOLE) -> None:
    """``shard``'s share of the reference scores: the baselines and published methods on its pairs of every
    dataset, as rows for :func:`merge_reference`."""
    for dataset, split in evaluation_splits(cfg, root).items():
        pairs = shard.take(_pairs(root, dataset, split))
        methods = reference_methods(cfg, root, dataset, split)
        log.info("%s/%s: %d pairs, reference methods %s", dataset, split, len(pairs), ", ".join(methods))
        rows = _score_methods(cfg, pairs, methods, f"evaluate {dataset} (reference)") if pairs else []
        write_text_atomic(fragment_path(root, REFERENCE, dataset, shard), rows_to_csv(rows))


def merge_reference(cfg: Evaluate, root: Path, count: int = 1) -> None:
    """The reference rows of ``count`` shards into reference/fusion/<dataset>.{json,csv}."""
    for dataset, split in evaluation_splits(cfg, root, warn=False).items():
        rows = _merged(root, REFERENCE, dataset, count, reference_methods(cfg, root, dataset, split))
        write_text_atomic(root / REFERENCE_SCORES / f"{dataset}.json", json.dumps(summarise(rows), indent=2) + "\n")
        write_text_atomic(root / REFERENCE_SCORES / f"{dataset}.csv", rows_to_csv(rows))
        remove_fragments(root, REFERENCE, dataset, count)
    (root / REFERENCE_SCORES).mkdir(parents=True, exist_ok=True)  # the stage output, even with nothing to score
    log.info("wrote %s", root / REFERENCE_SCORES)


def run_evaluate_reference(cfg: Evaluate, root: Path) -> None:
    """Score the baselines and the published methods of every dataset into reference/fusion/ (one process)."""
    score_reference(cfg, root)
    merge_reference(cfg, root)


def reference_rows(root: Path, dataset: str) -> list[dict[str, object]]:
    """The per-image rows the reference part wrote for ``dataset`` (metric values as floats, empty as NaN)."""
    path = root / REFERENCE_SCORES / f"{dataset}.csv"
    if not path.is_file():
        raise DataError(f"no reference scores {path}: run the evaluate_reference stage first (dvc repro)")
    return parse_rows(path.read_text(encoding="utf-8"))


def score_ours(cfg: Evaluate, root: Path, shard: Shard = WHOLE) -> None:
    """``shard``'s share of the scores of data/fused/<Method>/<dataset>/<split>, as rows for :func:`merge_ours`."""
    for dataset, split in evaluation_splits(cfg, root).items():
        reference = reference_rows(root, dataset)  # missing reference scores end the stage before any scoring
        pairs = shard.take(_pairs(root, dataset, split))
        ours = method_folders(root / FUSED, dataset, split)
        if clash := sorted(ours.keys() & {r["method"] for r in reference}):
            raise DataError(
                f"{ours[clash[0]]}: the method name {clash[0]!r} is also a reference method of {dataset} (a baseline, "
                f"a published result or evaluate.external); its rows would replace those: rename one"
            )
        rows = []
        if ours and pairs:
            log.info("%s/%s: %d pairs, our methods %s", dataset, split, len(pairs), ", ".join(ours))
            rows = _score_methods(cfg, pairs, ours, f"evaluate {dataset}")
        write_text_atomic(fragment_path(root, OURS, dataset, shard), rows_to_csv(rows))


def merge_ours(cfg: Evaluate, root: Path, count: int = 1) -> None:
    """The rows of ``count`` shards with the reference rows into metrics/fusion/<dataset>.json and
    reports/fusion/<dataset>.{csv,md}."""
    for dataset, split in evaluation_splits(cfg, root, warn=False).items():
        pairs = _pairs(root, dataset, split)
        rows = reference_rows(root, dataset)
        ours = method_folders(root / FUSED, dataset, split)
        scored = _merged(root, OURS, dataset, count, ours)
        rows = [r for r in rows if r["method"] not in ours] + scored
        summary = summarise(rows)
        title = f"{dataset} {split} ({len(pairs)} pairs, metric variant {cfg.variant})"
        write_text_atomic(root / f"metrics/fusion/{dataset}.json", json.dumps(summary, indent=2) + "\n")
        write_text_atomic(root / f"reports/fusion/{dataset}.csv", rows_to_csv(rows))
        write_text_atomic(root / f"reports/fusion/{dataset}.md", fair_tables(rows, title=title))
        remove_fragments(root, OURS, dataset, count)
        log.info("wrote metrics/fusion/%s.json and reports/fusion/%s.{csv,md}", dataset, dataset)
    for folder in ("metrics/fusion", "reports/fusion"):
        (root / folder).mkdir(parents=True, exist_ok=True)


def run_evaluate(cfg: Evaluate, root: Path) -> None:
    """Score data/fused/<Method>/<dataset>/<split> and write every method's scores per dataset (one process)."""
    score_ours(cfg, root)
    merge_ours(cfg, root)


def evaluate_stage(cfg: Evaluate, root: Path, part: str) -> ShardedStage:
    """Stage part ``part`` (``reference`` or ``ours``) as shards (occo/pipeline/shard.py): scores per shard,
    metrics at the merge."""
    if part == REFERENCE:
        return ShardedStage(lambda shard: score_reference(cfg, root, shard), lambda n: merge_reference(cfg, root, n))
    return ShardedStage(lambda shard: score_ours(cfg, root, shard), lambda n: merge_ours(cfg, root, n))
