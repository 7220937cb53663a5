"""DVC stage `download`: the synthetic set and the datasets of `download.datasets` into data/raw.

Reads params `download`. Writes data/raw/<name>/<split>/{ir,vi,...}, published fused results to
data/external/<Method>/<name>/<split>/, and data/raw/INDEX.json ({dataset: {split: pairs}}).
Relative sources start at the repository root (docs/data.md).
"""

from occo.fetch.datasets import run_download
from occo.pipeline.entry import run_stage


def main(argv: list[str] | None = None) -> None:
    run_stage(__doc__, __file__, argv, lambda cfg, root, _: run_download(cfg, root), section="download")


if __name__ == "__main__":
    main()
