"""Command-line flags that take a params value: each is parsed by the params' own schema type, so a flag
and its param accept the same values and are refused with the same words."""

from __future__ import annotations

import argparse
from typing import Any

from occo.config.load import check_value
from occo.config.types import MaxPixels, PositiveInt


def schema_flag(kind: Any, value: str, flag: str) -> Any:
    """``value`` of ``flag`` parsed as the schema type ``kind`` (laxly: ``"4"`` is 4); else
    argparse.ArgumentTypeError ``<value>: <what is allowed>`` (argparse prefixes the flag)."""
    try:
        return check_value(kind, value, flag)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix(f"{flag} = ")) from None


def max_pixels_flag(value: str) -> int:
    """argparse type of ``--max-pixels``: a whole number of pixels from 1 to Pillow's limit (``MaxPixels``)."""
    return schema_flag(MaxPixels, value, "--max-pixels")


def split_above_flag(value: str) -> int:
    """argparse type of ``--split-above``: a positive number of pixels (``fuse.split_above``)."""
    return schema_flag(PositiveInt, value, "--split-above")
