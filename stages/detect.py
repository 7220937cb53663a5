"""DVC stage `detect`: YOLOv5 trained on each method's fused images and tested on the shared split.

Reads params `detect`. For every dataset of `detect.run` (defined in `detect.datasets`) and every
method of `detect.methods` it builds a YOLO dataset under data/detect/<dataset>/<method>/, trains a
detector from the same initial weights (models/detect/<dataset>/<method>/, resumable) and writes
  metrics/detect/<dataset>/<method>.json   per-class AP@0.5, AP@0.5:0.95 and the paper's "all",
  reports/detect/<dataset>.md              a methods × classes table shaped like the paper's Tables 3–4.
"""

from __future__ import annotations

from occo.downstream.detect import run_detect
from occo.stage import run_stage


def main(argv: list[str] | None = None) -> None:
    run_stage(__doc__, __file__, argv, lambda params, root, _: run_detect(params, root), section="detect")


if __name__ == "__main__":
    main()
