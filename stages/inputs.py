"""DVC stage `inputs` (always run): resolve everything the pipeline reads from outside itself.

Reads the whole params.yaml. Checks every dataset source, every file or folder a param names and the
pretrained weights the settings need (downloading absent ones where there is a network), then writes
data/inputs/<stage>.json (size and sha256 of each input) for every consuming stage, so DVC re-runs a
stage when a file behind one of its params changes. Everything missing is one error, each item with
its param (occo/pipeline/inputs.py).
"""

from occo.pipeline.entry import run_stage
from occo.pipeline.inputs import run_inputs


def main(argv: list[str] | None = None) -> None:
    run_stage(__doc__, __file__, argv, lambda cfg, root, _: run_inputs(cfg, root))


if __name__ == "__main__":
    main()
