"""DVC stage `weights`: fetch the pretrained weights listed in `weights.fetch` into models/pretrained/.

Reads params `weights`:

    weights:
      fetch: [sam_vit_h, groundingdino_swint_ogc, ...]   # names in occo/data/registry.yaml

Each file is downloaded from its official URL (resumable, sha256-checked) unless a verified copy is
already there; model folders (e.g. BERT) land in models/pretrained/<name>/. Writes
models/pretrained/INDEX.json ({name: path relative to models/pretrained}); the stages that load
weights depend on the folder. Offline, put the files there by hand (the error says which and from
where) or point the consuming stage's param at a local copy.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from occo.data import write_text_atomic
from occo.stage import run_stage
from occo.weights import PRETRAINED_DIR, WeightsUnavailableError, resolve_weights

log = logging.getLogger("stages.weights")


def run(params: dict, root: Path) -> dict[str, str]:
    """Fetch every name in ``params['fetch']`` under ``root``; returns the index it writes."""
    folder = root / PRETRAINED_DIR
    folder.mkdir(parents=True, exist_ok=True)
    index = {}
    for name in params.get("fetch") or []:
        path = resolve_weights(name, None, param="weights.fetch (or the consuming stage's local-path param)", root=root)
        index[name] = path.relative_to(folder).as_posix()
    write_text_atomic(folder / "INDEX.json", json.dumps(index, indent=2, sort_keys=True) + "\n")
    log.info("pretrained weights in %s: %s", folder, ", ".join(index) or "none requested")
    return index


def main(argv: list[str] | None = None) -> None:
    run_stage(
        __doc__, __file__, argv, lambda params, root, _: run(params, root), section="weights",
        errors=(WeightsUnavailableError,),
    )


if __name__ == "__main__":
    main()
