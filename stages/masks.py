"""DVC stage `masks`: object masks per modality (Grounding DINO boxes → SAM masks), or imported published masks.

Reads params `masks` and data/raw/INDEX.json. For every split of `masks.datasets` it writes, under
data/masks/<dataset>/<split>/: ir/<id>.png and vi/<id>.png (0/255, source size), boxes/<id>.json
and settings.json; and reports/masks/<dataset>/<split>/<id>.png overlays of the first `masks.gallery`
pairs. `masks.import.<dataset>.<split>: <folder>` imports the authors' published masks instead
(occo/masks/splits.py, docs/masks.md). `OCCO_PROCS=N`, torchrun or `--shard i/n` split the pairs over
processes (occo/pipeline/shard.py).
"""

from occo.masks.splits import masks_stage
from occo.pipeline.entry import run_sharded_stage


def main(argv: list[str] | None = None) -> None:
    run_sharded_stage(__doc__, __file__, argv, lambda cfg, root, _: masks_stage(cfg, root), section="masks")


if __name__ == "__main__":
    main()
