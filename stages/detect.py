"""DVC stages `detect_reference` and `detect`: YOLOv5 trained on each method's images, tested on the shared split.

Reads params `detect`. For every dataset of `detect.run` (defined in `detect.datasets`) and every
method of `detect.methods` it builds a YOLO dataset, trains a detector from the same initial weights
(resumable) and tests it.

`--part reference` (stage `detect_reference`) trains the methods no experiment changes — `visible`,
`infrared` and published methods — once: models/detect_reference/, reference/detect/<dataset>/<method>.json
(YOLO datasets are scratch under .cache/occo/detect_reference/).

`--part ours` (stage `detect`) trains the methods on our fused images (models/detect/; YOLO datasets
under .cache/occo/detect/) and
writes, for every method,
  metrics/detect/<dataset>/<method>.json   per-class AP@0.5, AP@0.5:0.95 and the paper's "all",
  reports/detect/<dataset>.md              a methods × classes table shaped like the paper's Tables 3–4.
"""

from __future__ import annotations

from occo.downstream.detect import run_detect
from occo.pipeline.entry import run_stage
from occo.pipeline.sources import PARTS


def main(argv: list[str] | None = None) -> None:
    run_stage(
        __doc__,
        __file__,
        argv,
        lambda cfg, root, args: run_detect(cfg, root, part=args.part),
        section="detect",
        add_arguments=lambda p: p.add_argument("--part", choices=PARTS, required=True, help="which stage to run"),
    )


if __name__ == "__main__":
    main()
