"""One self-contained HTML page: inline CSS, every image a base64 data URI, no script, no external URL."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from occo.data.io import DataError
from occo.report.render.document import Banner, Block, Bullets, Figure, Heading, Paragraph, TableBlock

CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 2em auto;
       max-width: 1300px; padding: 0 1.5em; color: #1d1d1f; line-height: 1.45; }
h1 { border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { border-bottom: 1px solid #bbb; padding-bottom: .15em; margin-top: 2em; }
code { background: #f1f1f1; padding: 0 .25em; border-radius: 3px; font-size: 90%; }
table { border-collapse: collapse; margin: .6em 0 1.2em; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; font-variant-numeric: tabular-nums; }
thead th { background: #eef1f5; text-align: center; }
tbody th { text-align: left; font-weight: 600; background: #fafafa; }
td.best { font-weight: 700; background: #e6f4ea; }
tr.reference td, tr.reference th, tr.difference td, tr.difference th { font-style: italic; color: #555; }
tr.reference th, tr.reference td { border-top: 2px solid #888; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { color: #555; font-size: 13px; }
.caption { color: #333; margin-bottom: .2em; }
.banner { background: #fff3cd; border: 2px solid #d39e00; border-radius: 4px; padding: .6em 1em; margin: 1em 0; }
"""


def data_uri(path: Path) -> str:
    """The PNG at ``path`` as a ``data:image/png;base64,…`` URI."""
    try:
        payload = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read report image {path}: {err}") from None
    return "data:image/png;base64," + base64.b64encode(payload).decode("ascii")


def inline(text: str) -> str:
    """Escape ``text`` and turn `code` spans into <code> elements."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def block_html(block: Block) -> str:
    """One block as HTML."""
    if isinstance(block, Heading):
        return f"<h{block.level}>{inline(block.text)}</h{block.level}>"
    if isinstance(block, Paragraph):
        return f"<p>{inline(block.text)}</p>"
    if isinstance(block, Banner):
        return f'<div class="banner"><strong>Warning:</strong> {inline(block.text)}</div>'
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{inline(item)}</li>" for item in block.items) + "</ul>"
    if isinstance(block, TableBlock):
        caption = f'<p class="caption">{inline(block.caption)}</p>' if block.caption else ""
        return caption + block.table.to_html()
    if isinstance(block, Figure):
        alt = html.escape(block.caption, quote=True)
        img = f'<img src="{data_uri(block.path)}" alt="{alt}">'
        return f"<figure>{img}<figcaption>{inline(block.caption)}</figcaption></figure>"
    raise TypeError(f"unknown report block {block!r}")


def to_html(blocks: list[Block], *, title: str) -> str:
    """The whole page; images are read from disk and embedded."""
    body = "\n".join(block_html(block) for block in blocks)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )
