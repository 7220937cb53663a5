"""DVC stage `report`: one readable report of the whole run, as markdown and as a self-contained HTML page.

Reads params `report` (plus the loss weights, `ablation`, `arch`, `loss`, `masks.prompt`, `train` and
`evaluate.baselines` to describe the run), metrics/fusion/*.json, metrics/{detect,segment}/<ds>/<method>.json,
dvclive/train/ and the images under data/. Writes reports/report.md, reports/report.html,
reports/figures/, reports/gallery/ and reports/plots/ (CSV tables for `dvc plots`).
"""

from __future__ import annotations

from occo.report.build import build_report
from occo.stage import run_stage


def main(argv: list[str] | None = None) -> None:
    run_stage(__doc__, __file__, argv, lambda params, root, _: build_report(root, params))


if __name__ == "__main__":
    main()
