"""DVC stage `evaluate`: fusion metrics of every method on every imported dataset's evaluation split.

Reads params `evaluate` and data/raw/INDEX.json (written by the download stage). For each dataset
it scores the pixel baselines plus every method folder found under the `evaluate.method_roots`
(layout <root>/<Method>/<dataset>/<split>/) and the folders named in `evaluate.external`, then writes
  metrics/fusion/<dataset>.json     means per method (DVC metrics),
  reports/fusion/<dataset>.csv      per-image values,
  reports/fusion/<dataset>.md       a table shaped like the paper's Tables 1–2.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path


from occo.data import check_name, find_pairs, write_text_atomic
from occo.metrics.evaluate import evaluate_pairs, markdown_table, summarise
from occo.stage import run_stage

log = logging.getLogger("stages.evaluate")


def methods_for(dataset: str, split: str, params: dict, root: Path) -> dict[str, Path | None]:
    """Baselines first, then method folders found under the method roots, then explicit ones."""
    methods: dict[str, Path | None] = {name: None for name in params["baselines"]}
    for method_root in params.get("method_roots") or []:
        base = root / method_root
        for folder in sorted(base.glob(f"*/{dataset}/{split}")) if base.is_dir() else []:
            methods[folder.parents[1].name] = folder
    for method, per_dataset in (params.get("external") or {}).items():
        if dataset in per_dataset:
            methods[method] = (root / per_dataset[dataset]).resolve()
    return methods


def run(params: dict, root: Path) -> None:
    index = json.loads((root / "data/raw/INDEX.json").read_text(encoding="utf-8"))
    for dataset, splits in index.items():
        check_name(dataset, "dataset of data/raw/INDEX.json")
        split = check_name((params.get("splits") or {}).get(dataset, "test"), f"evaluate.splits.{dataset}")
        if split not in splits:
            log.warning("%s has no %r split (has %s); set evaluate.splits.%s", dataset, split, sorted(splits), dataset)
            continue
        data = root / "data/raw" / dataset / split
        pairs = find_pairs(data / "ir", data / "vi")
        methods = methods_for(dataset, split, params, root)
        log.info("%s/%s: %d pairs, methods %s", dataset, split, len(pairs), ", ".join(methods))
        per_image = evaluate_pairs(
            pairs,
            methods,
            variant=params["variant"],
            device=params["device"],
            batch_size=params["batch_size"],
            desc=f"evaluate {dataset}",
        )
        summary = summarise(per_image)
        title = f"{dataset} {split} ({len(pairs)} pairs, metric variant {params['variant']})"
        write_text_atomic(root / f"metrics/fusion/{dataset}.json", json.dumps(summary, indent=2) + "\n")
        write_text_atomic(root / f"reports/fusion/{dataset}.csv", per_image.to_csv(index=False))
        write_text_atomic(root / f"reports/fusion/{dataset}.md", markdown_table(summary, title=title))
        log.info("wrote metrics/fusion/%s.json and reports/fusion/%s.{csv,md}", dataset, dataset)


def main(argv: list[str] | None = None) -> None:
    run_stage(__doc__, __file__, argv, lambda params, root, _: run(params, root), section="evaluate")


if __name__ == "__main__":
    main()
