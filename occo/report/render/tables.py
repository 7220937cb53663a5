"""Result tables: rows = methods, columns = metrics or classes, the best method value in bold.

A table may carry reference rows (published numbers) and difference rows (ours − reference) after the
method rows; they are printed in italics and never take part in choosing the best value. Every metric
shown is higher-is-better (fusion metrics, AP, IoU).
"""

from __future__ import annotations

import html
import math
import numbers
from dataclasses import dataclass, field

import pandas as pd

ROW_KINDS = ("method", "reference", "difference")


@dataclass(frozen=True)
class Row:
    """One table row: its label, its value per column, and whether it is a method, a reference or a difference."""

    label: str
    values: dict[str, float | int | None]
    kind: str = "method"


@dataclass
class Table:
    """A table with value columns (best in bold unless ``bold_best`` is off) and info columns (never bold).

    ``number_format`` is the format type of the values: ``f`` (``digits`` decimals) or ``g`` (``digits``
    significant digits, for values of any magnitude such as losses and learning rates).
    """

    columns: list[str]
    rows: list[Row] = field(default_factory=list)
    info_columns: list[str] = field(default_factory=list)
    digits: int = 4
    label_header: str = "Method"
    bold_best: bool = True
    number_format: str = "f"

    @classmethod
    def from_frame(
        cls, frame: pd.DataFrame, columns: list[str], *, info_columns: list[str] | None = None, digits: int = 4
    ) -> Table:
        """Method rows from a frame indexed by method (NaN becomes an empty cell)."""
        info = info_columns or []
        rows = [Row(str(method), {c: clean(frame.at[method, c]) for c in [*info, *columns]}) for method in frame.index]
        return cls(columns=list(columns), rows=rows, info_columns=info, digits=digits)

    def best(self) -> dict[str, float | None]:
        """Highest method value per value column (None when no method has one)."""
        return {
            c: max((r.values[c] for r in self.rows if r.kind == "method" and r.values.get(c) is not None), default=None)
            for c in self.columns
        }

    def cells(self) -> list[tuple[Row, list[tuple[str, bool]]]]:
        """Each row with its formatted cells and whether each is the column's best."""
        best = self.best()
        out = []
        for row in self.rows:
            cells = [(_format(row.values.get(c), 0, "method", "f"), False) for c in self.info_columns]
            for c in self.columns:
                value = row.values.get(c)
                is_best = self.bold_best and row.kind == "method" and value is not None and value == best[c]
                cells.append((_format(value, self.digits, row.kind, self.number_format), is_best))
            out.append((row, cells))
        return out

    def header(self) -> list[str]:
        return [self.label_header, *self.info_columns, *self.columns]

    def to_markdown(self) -> str:
        """GitHub markdown: best in bold, reference and difference rows in italics."""
        lines = [
            "| " + " | ".join(_md_escape(h) for h in self.header()) + " |",
            "|---|" + "---:|" * (len(self.info_columns) + len(self.columns)),
        ]
        for row, cells in self.cells():
            label = _md_escape(row.label) if row.kind == "method" else f"*{_md_escape(row.label)}*"
            shown = [
                f"**{text}**" if best else (f"*{text}*" if row.kind != "method" and text != "–" else text)
                for text, best in cells
            ]
            lines.append(f"| {label} | " + " | ".join(shown) + " |")
        return "\n".join(lines) + "\n"

    def to_html(self) -> str:
        """An HTML table with the same content (classes ``best``, ``reference``, ``difference``)."""
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.header())
        body = []
        for row, cells in self.cells():
            tds = "".join(
                f'<td class="best">{html.escape(t)}</td>' if b else f"<td>{html.escape(t)}</td>" for t, b in cells
            )
            cls = "" if row.kind == "method" else f' class="{row.kind}"'
            body.append(f"<tr{cls}><th>{html.escape(row.label)}</th>{tds}</tr>")
        return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def clean(value: object) -> float | int | None:
    """Python numbers from numpy scalars; NaN and None become None."""
    if value is None:
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    number = float(value)  # type: ignore[arg-type]
    return None if math.isnan(number) else number


def _format(value: float | int | None, digits: int, kind: str, style: str) -> str:
    if value is None:
        return "–"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return f"{value:+.{digits}{style}}" if kind == "difference" else f"{value:.{digits}{style}}"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")
