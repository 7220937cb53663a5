"""The report as a list of blocks, rendered once to markdown (here) and once to HTML (``html.py``).

Block text is plain; inline `code` spans are the only markup, rendered by both writers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from occo.report.render.tables import Table


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Banner:
    """A warning shown prominently at the top of the page (a quote in markdown, a coloured box in HTML)."""

    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class TableBlock:
    table: Table
    caption: str | None = None


@dataclass(frozen=True)
class Figure:
    """An image file written by the report stage, with its caption."""

    path: Path
    caption: str


Block = Heading | Paragraph | Banner | Bullets | TableBlock | Figure


def yaml_scalar(value: object) -> str:
    """A param value as YAML writes it (true/false/null; a whole-number real as ``10``; a list in flow style), for
    the report's text."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "[" + ", ".join(yaml_scalar(v) for v in value) + "]"
    return str(value)


def to_markdown(blocks: list[Block], *, base: Path) -> str:
    """Markdown with image links relative to ``base`` (the folder the .md file is written to)."""
    parts: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Paragraph):
            parts.append(block.text)
        elif isinstance(block, Banner):
            parts.append(f"> **Warning:** {block.text}")
        elif isinstance(block, Bullets):
            parts.append("\n".join(f"- {item}" for item in block.items))
        elif isinstance(block, TableBlock):
            table = block.table.to_markdown().rstrip("\n")
            parts.append(f"{block.caption}\n\n{table}" if block.caption else table)
        elif isinstance(block, Figure):
            link = Path(os.path.relpath(block.path, base)).as_posix()
            parts.append(f"![{block.caption}]({link})\n\n*{block.caption}*")
        else:
            raise TypeError(f"unknown report block {block!r}")
    return "\n\n".join(parts) + "\n"
