"""DVC stage `report`: one readable report of the whole run, as markdown and as a self-contained HTML page.

Reads params `report`, the loss weights omega1..omega6, `ablation`, `arch`, `loss`, `masks.prompt`, `train`
(to describe the run and place it in the paper's Tables 6-9), `evaluate.baselines`, `evaluate.splits`,
and the random-init switches `masks.random_init`, `train.vgg_random_init`, `detect.pretrained`,
`segment.encoder_weights` (banner); metrics/fusion/*.json, metrics/{detect,segment}/<ds>/<method>.json,
dvclive/train/, the images under data/, and, through git (never dvc: the stage runs under DVC's lock),
the params and FMB metrics of the workspace's other experiments; the environment variable DVC_EXP_NAME.
Writes reports/report.md, reports/report.html, reports/figures/, reports/gallery/, reports/plots/ (CSV
tables for `dvc plots`).
"""

from __future__ import annotations

from occo.pipeline.entry import run_stage
from occo.report.build import build_report


def main(argv: list[str] | None = None) -> None:
    run_stage(__doc__, __file__, argv, lambda cfg, root, _: build_report(root, cfg))


if __name__ == "__main__":
    main()
