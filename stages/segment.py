"""DVC stages `segment_reference` and `segment`: DeepLabV3+ per method, per-class IoU, mIoU (occo.downstream.segment).

Reads params `segment`; data/raw/<dataset>/<split>/labels/seg and each method's images
(data/raw/<dataset>/<split>/{vi,ir}, data/external/<Method>/..., data/fused/<Method>/...).

`--part reference` (stage `segment_reference`) trains the methods no experiment changes — `visible`,
`infrared` and published methods — once: models/segment_reference/<dataset>/<method>/,
dvclive/segment_reference/<dataset>/<method>/, reference/segment/<dataset>/<method>.json.

`--part ours` (stage `segment`) trains the methods on our fused images and writes, for every method,
  metrics/segment/<dataset>/<method>.json      per-class IoU, mIoU (DVC metrics),
  reports/segment/<dataset>.md                  methods x classes table,
  models/segment/<dataset>/<method>/last.pt     resumable state (resumes only with the same params and images),
  models/segment/<dataset>/<method>/model.pt    final weights,
  dvclive/segment/<dataset>/<method>/           training curves.
A dataset without segmentation labels is skipped with a warning.
"""

from __future__ import annotations

from occo.downstream.segment import run_segment
from occo.pipeline.entry import run_stage
from occo.pipeline.sources import PARTS


def main(argv: list[str] | None = None) -> None:
    run_stage(  # DataError: bad input, bad segment.* values or missing encoder weights
        __doc__,
        __file__,
        argv,
        lambda cfg, root, args: run_segment(cfg, root, part=args.part),
        section="segment",
        add_arguments=lambda p: p.add_argument("--part", choices=PARTS, required=True, help="which stage to run"),
    )


if __name__ == "__main__":
    main()
