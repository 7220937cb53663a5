"""Names that become folder names (datasets, splits, methods) are checked before any path is built."""

from __future__ import annotations

from occo.config.types import folder_name_problem
from occo.data.io import DataError


def check_name(value: object, what: str) -> str:
    """``value`` when it is one path component: a non-empty string without separators, not ``.`` or ``..``.

    ``what`` says where the name comes from (e.g. ``"dataset of data/raw/INDEX.json"``); anything else
    raises DataError naming it, so ``../masks`` can never address a folder outside the one it belongs in.
    Params are checked by their schema (``occo.config.types.FolderName``) with the same rule.
    """
    if folder_name_problem(value) is not None:
        raise DataError(f"{what} must be one folder name (no '/', '\\', '.' or '..'), got {value!r}")
    return value  # type: ignore[return-value]
