"""DVC stages `evaluate_reference` and `evaluate`: fusion metrics of every method on every dataset.

Reads params `evaluate` and data/raw/INDEX.json (written by the download stage). The evaluation split
of a dataset is `evaluate.splits.<dataset>` (default `test`).

`--part reference` (stage `evaluate_reference`) scores what no experiment changes: the pixel baselines
`evaluate.baselines`, every published method under data/external/<Method>/<dataset>/<split>/ and the
folders of `evaluate.external`, on every imported dataset, once. It writes reference/fusion/<dataset>.json
(means) and .csv (per image).

`--part ours` (stage `evaluate`) scores our fused images, data/fused/<Method>/<dataset>/<split>/ (OCCO
and any `fuse.extra_checkpoints`), and merges them with the reference scores into
  metrics/fusion/<dataset>.json     means of every method (DVC metrics),
  reports/fusion/<dataset>.csv      per-image values,
  reports/fusion/<dataset>.md       a table shaped like the paper's Tables 1–2.
An experiment that changes only OCCO re-runs the second part alone.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from occo.data import DataError, check_name, find_pairs, write_text_atomic
from occo.metrics.evaluate import Row, markdown_table, rows_to_csv, score_pairs, summarise
from occo.metrics.suite import METRICS
from occo.stage import run_stage

log = logging.getLogger("stages.evaluate")

REFERENCE = Path("reference/fusion")
PUBLISHED = Path("data/external")
OURS = Path("data/fused")
PARTS = ("reference", "ours")


def method_folders(base: Path, dataset: str, split: str) -> dict[str, Path]:
    """``{Method: base/<Method>/<dataset>/<split>}`` for every such folder, by name."""
    if not base.is_dir():
        return {}
    return {folder.parents[1].name: folder for folder in sorted(base.glob(f"*/{dataset}/{split}")) if folder.is_dir()}


def reference_methods(dataset: str, split: str, params: dict, root: Path) -> dict[str, Path | None]:
    """Baselines first, then published methods under data/external, then the folders of `evaluate.external`."""
    methods: dict[str, Path | None] = {name: None for name in params["baselines"]}
    methods |= method_folders(root / PUBLISHED, dataset, split)
    for method, per_dataset in (params.get("external") or {}).items():
        if dataset in (per_dataset or {}):
            methods[method] = (root / per_dataset[dataset]).resolve()
    return methods


def evaluation_splits(params: dict, root: Path) -> dict[str, str]:
    """``{dataset: split}`` for every imported dataset that has its evaluation split (others warned about)."""
    index = json.loads((root / "data/raw/INDEX.json").read_text(encoding="utf-8"))
    chosen = {}
    for dataset, splits in index.items():
        check_name(dataset, "dataset of data/raw/INDEX.json")
        split = check_name((params.get("splits") or {}).get(dataset, "test"), f"evaluate.splits.{dataset}")
        if split not in splits:
            log.warning("%s has no %r split (has %s); set evaluate.splits.%s", dataset, split, sorted(splits), dataset)
            continue
        chosen[dataset] = split
    return chosen


def _score(pairs, methods: dict[str, Path | None], params: dict, desc: str) -> list[Row]:
    return score_pairs(
        pairs, methods, variant=params["variant"], device=params["device"], batch_size=params["batch_size"], desc=desc
    )


def run_reference(params: dict, root: Path) -> None:
    """Score the baselines and the published methods of every dataset into reference/fusion/."""
    for dataset, split in evaluation_splits(params, root).items():
        data = root / "data/raw" / dataset / split
        pairs = find_pairs(data / "ir", data / "vi")
        methods = reference_methods(dataset, split, params, root)
        log.info("%s/%s: %d pairs, reference methods %s", dataset, split, len(pairs), ", ".join(methods))
        rows = _score(pairs, methods, params, f"evaluate {dataset} (reference)")
        write_text_atomic(root / REFERENCE / f"{dataset}.json", json.dumps(summarise(rows), indent=2) + "\n")
        write_text_atomic(root / REFERENCE / f"{dataset}.csv", rows_to_csv(rows))
    (root / REFERENCE).mkdir(parents=True, exist_ok=True)  # the stage output, even with nothing to score
    log.info("wrote %s", root / REFERENCE)


def _reference_scores(root: Path, dataset: str) -> pd.DataFrame:
    path = root / REFERENCE / f"{dataset}.csv"
    if not path.is_file():
        raise DataError(f"no reference scores {path}: run the evaluate_reference stage first (dvc repro)")
    return pd.read_csv(path, dtype={"id": str})


def run_ours(params: dict, root: Path) -> None:
    """Score data/fused/<Method>/<dataset>/<split> and write every method's scores per dataset."""
    for dataset, split in evaluation_splits(params, root).items():
        data = root / "data/raw" / dataset / split
        pairs = find_pairs(data / "ir", data / "vi")
        per_image = _reference_scores(root, dataset)
        ours = method_folders(root / OURS, dataset, split)
        if ours:
            log.info("%s/%s: %d pairs, our methods %s", dataset, split, len(pairs), ", ".join(ours))
            rows = _score(pairs, ours, params, f"evaluate {dataset}")
            scored = pd.DataFrame(rows, columns=["method", "id", *METRICS])
            per_image = pd.concat([per_image[~per_image["method"].isin(ours)], scored], ignore_index=True)
        per_image = per_image[["method", "id", *METRICS]]
        summary = summarise(per_image.to_dict("records"))
        title = f"{dataset} {split} ({len(pairs)} pairs, metric variant {params['variant']})"
        write_text_atomic(root / f"metrics/fusion/{dataset}.json", json.dumps(summary, indent=2) + "\n")
        write_text_atomic(root / f"reports/fusion/{dataset}.csv", per_image.to_csv(index=False))
        write_text_atomic(root / f"reports/fusion/{dataset}.md", markdown_table(summary, title=title))
        log.info("wrote metrics/fusion/%s.json and reports/fusion/%s.{csv,md}", dataset, dataset)
    for folder in ("metrics/fusion", "reports/fusion"):
        (root / folder).mkdir(parents=True, exist_ok=True)


def main(argv: list[str] | None = None) -> None:
    run_stage(
        __doc__,
        __file__,
        argv,
        lambda params, root, args: (run_reference if args.part == "reference" else run_ours)(params, root),
        section="evaluate",
        add_arguments=lambda p: p.add_argument("--part", choices=PARTS, default="ours", help="which stage to run"),
    )


if __name__ == "__main__":
    main()
