"""Where each method's images of a dataset split live, so every downstream task reads them the same way,
and which of the configured methods/datasets one downstream call runs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from occo.data.io import DataError

SOURCE_MODALITIES = {"visible": "vi", "infrared": "ir"}
"""Single-modality baselines: the source images themselves."""


def method_images(root: Path, method: str, dataset: str, split: str) -> Path:
    """The image folder of ``method`` on ``dataset``/``split`` under the repository ``root``.

    ``visible``/``infrared`` are ``data/raw/<ds>/<split>/{vi,ir}``; any other method (``occo``
    included) is ``data/fused/<method>/<ds>/<split>`` or, for published results,
    ``data/external/<method>/<ds>/<split>``, whichever exists first. DataError when none does.
    """
    root = Path(root)
    if method in SOURCE_MODALITIES:
        candidates = [root / "data/raw" / dataset / split / SOURCE_MODALITIES[method]]
    else:
        candidates = [root / base / method / dataset / split for base in ("data/fused", "data/external")]
    for folder in candidates:
        if folder.is_dir():
            return folder
    tried = " or ".join(str(c) for c in candidates)
    raise DataError(f"no images of method {method!r} for {dataset}/{split}: {tried} does not exist")


def select(configured: Sequence[str], chosen: str | None, param: str) -> list[str]:
    """``[chosen]`` when a call is restricted to one entry of the ``param`` list, else all of ``configured``;
    DataError naming the param and its entries when ``chosen`` is not one of them."""
    if chosen is None:
        return list(configured)
    if chosen not in configured:
        raise DataError(f"{chosen!r} is not in params {param} ({', '.join(configured) or 'empty'}); add it there first")
    return [chosen]
