"""DVC stages `evaluate_reference` and `evaluate`: fusion metrics of every method on every dataset.

Reads params `evaluate` and data/raw/INDEX.json; the split of a dataset is `evaluate.splits.<dataset>`
(default `test`). `--part reference` scores the pixel baselines and published methods once into
reference/fusion/; `--part ours` scores data/fused/<Method>/ and merges both into metrics/fusion/
and reports/fusion/ (occo/metrics/scoring.py). `OCCO_PROCS=N`, torchrun or `--shard i/n` then
`--merge n` split the pairs over processes (occo/pipeline/shard.py).
"""

from occo.metrics.scoring import evaluate_stage
from occo.pipeline.entry import run_sharded_stage
from occo.pipeline.sources import PARTS


def main(argv: list[str] | None = None) -> None:
    run_sharded_stage(
        __doc__,
        __file__,
        argv,
        lambda cfg, root, args: evaluate_stage(cfg, root, args.part),
        section="evaluate",
        add_arguments=lambda p: p.add_argument("--part", choices=PARTS, default="ours", help="which stage to run"),
    )


if __name__ == "__main__":
    main()
