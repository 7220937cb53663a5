"""DVC stage `fuse`: every `<dataset>/<split>` of `fuse.datasets` fused with the trained network (occo/nn/fuse.py).

Reads params `fuse`, data/raw/INDEX.json and the checkpoint (default models/occo.pt). Writes
data/fused/occo/<dataset>/<split>/<id>.png (colour from the visible image; the checkpoint's sha256 in
each PNG, so outputs of another checkpoint are fused again, never kept) and data/fused/<Method>/...
for every `fuse.extra_checkpoints` entry. Splits absent from the index are skipped with a warning.
`OCCO_PROCS=N`, torchrun or `--shard i/n` split the pairs over processes (occo/pipeline/shard.py).
"""

from occo.nn.fuse import fuse_stage
from occo.pipeline.entry import run_sharded_stage


def main(argv: list[str] | None = None) -> None:
    run_sharded_stage(__doc__, __file__, argv, lambda cfg, root, _: fuse_stage(cfg, root), section="fuse")


if __name__ == "__main__":
    main()
