"""Names that become folder names (datasets, splits, methods) are checked before any path is built."""

from __future__ import annotations

from occo.data.io import DataError

_SEPARATORS = ("/", "\\", "\0")


def check_name(value: object, what: str) -> str:
    """``value`` when it is one path component: a non-empty string without separators, not ``.`` or ``..``.

    ``what`` says where the name comes from (e.g. ``"download.datasets key"``); anything else raises
    DataError naming it, so ``../masks`` can never address a folder outside the one it belongs in.
    """
    if not isinstance(value, str) or not value.strip() or value in (".", "..") or any(s in value for s in _SEPARATORS):
        raise DataError(f"{what} must be one folder name (no '/', '\\', '.' or '..'), got {value!r}")
    return value
