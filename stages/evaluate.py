"""DVC stages `evaluate_reference` and `evaluate`: fusion metrics of every method on every dataset.

Reads params `evaluate` and data/raw/INDEX.json; the split of a dataset is `evaluate.splits.<dataset>`
(default `test`). `--part reference` scores the pixel baselines and published methods once into
reference/fusion/; `--part ours` scores data/fused/<Method>/ and merges both into metrics/fusion/
and reports/fusion/ (occo/metrics/scoring.py).
"""

from occo.metrics.scoring import run_evaluate, run_evaluate_reference
from occo.pipeline.entry import run_stage
from occo.pipeline.sources import PARTS, REFERENCE


def main(argv: list[str] | None = None) -> None:
    run_stage(
        __doc__,
        __file__,
        argv,
        lambda cfg, root, args: (run_evaluate_reference if args.part == REFERENCE else run_evaluate)(cfg, root),
        section="evaluate",
        add_arguments=lambda p: p.add_argument("--part", choices=PARTS, default="ours", help="which stage to run"),
    )


if __name__ == "__main__":
    main()
