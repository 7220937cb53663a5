"""DVC stage `inputs` (always run): resolve everything the pipeline reads from outside itself.

Reads the whole params.yaml. Checks every dataset source of `download.datasets`, every file or folder a
param names (`masks.import`, `fuse.extra_checkpoints`, `evaluate.external`, local checkpoints) and the
pretrained weights the settings need, downloading absent weights into models/pretrained/ (VGG19 into
the torch hub cache) when there is a network. Writes data/inputs/<stage>.json for every consuming
stage (size and sha256 of each input), which that stage depends on: DVC re-runs a stage when a file
behind one of its params changes. Everything missing is listed in one error, each with its param.
The weights are not a stage output, so no `dvc repro`, `dvc checkout` or `dvc exp apply` deletes them.
"""

from __future__ import annotations

import logging
from pathlib import Path

from occo.inputs import gather, summary, write_manifests
from occo.stage import run_stage

log = logging.getLogger("stages.inputs")


def run(params: dict, root: Path) -> None:
    manifests = gather(params, root)
    for line in summary(manifests):
        log.info("%s", line)
    written = write_manifests(manifests, root)
    log.info("wrote %d input manifests in %s", len(written), written[0].parent if written else root)


def main(argv: list[str] | None = None) -> None:
    run_stage(__doc__, __file__, argv, lambda params, root, _: run(params, root))


if __name__ == "__main__":
    main()
