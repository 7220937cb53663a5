"""DVC stage `segment`: DeepLabV3+ per method on fused images, per-class IoU and mIoU (occo/downstream/segment.py).

Reads params `segment`; data/raw/<dataset>/<split>/labels/seg and each method's images
(data/raw/<dataset>/<split>/{vi,ir}, data/fused/<Method>/..., data/external/<Method>/...). Writes
  metrics/segment/<dataset>/<method>.json      per-class IoU, mIoU (DVC metrics),
  reports/segment/<dataset>.md                  methods x classes table,
  models/segment/<dataset>/<method>/last.pt     resumable state (persistent: a re-run resumes from it),
  models/segment/<dataset>/<method>/model.pt    final weights,
  dvclive/segment/<dataset>/<method>/           training curves.
A dataset without segmentation labels is skipped with a warning.
"""

from __future__ import annotations

from occo.downstream.segment import run_segment
from occo.stage import run_stage


def main(argv: list[str] | None = None) -> None:
    run_stage(  # DataError: bad input, bad segment.* values or missing encoder weights
        __doc__, __file__, argv, lambda params, root, _: run_segment(params, root), section="segment"
    )


if __name__ == "__main__":
    main()
