"""Ours beside the paper: for each method both sides have, our row, the paper's row and ours − paper.

Columns are the paper's (its metrics, or its classes of one metric); our values are looked up under the
same names (classes case-insensitively, since the paper prints ``people`` where the labels say
``People``) and scaled into the paper's unit (Table 3 prints IoU in %).
"""

from __future__ import annotations

from dataclasses import dataclass

from occo.report.paper.reference import PaperRow, difference
from occo.report.render.tables import Row, Table


@dataclass(frozen=True)
class Pairing:
    """One paper row and the names of our methods compared with it (``occo`` and e.g. ``OCCO-public``)."""

    paper: PaperRow
    ours: list[str]


def pairings(paper_rows: dict[str, PaperRow], our_methods: list[str], ours: list[str]) -> list[Pairing]:
    """The paper's rows (in paper order) that we have at least one method for; the paper's ``occo`` row
    is compared with every method of ``ours`` we scored, every other row with our method of its name."""
    found = []
    for name, row in paper_rows.items():
        mine = [m for m in ours if m in our_methods] if name == "occo" else [m for m in our_methods if m == name]
        if mine:
            found.append(Pairing(row, mine))
    return found


def lookup(values: dict[str, float | None], key: str) -> float | None:
    """``values[key]``, else the one key equal to it ignoring case (None when absent)."""
    if key in values:
        return values[key]
    folded = {k.casefold(): v for k, v in values.items()}
    return folded.get(key.casefold())


def beside_table(
    ours: dict[str, dict[str, float | None]],
    groups: list[Pairing],
    columns: dict[str, str],
    *,
    scale: float = 1.0,
    digits: int = 3,
    label_header: str = "Method",
) -> Table:
    """Rows per pairing: each of our methods, ``<row> (paper, Table k)``, then ``<method> − paper``.

    ``ours``: our values per method, keyed by our column names; ``columns``: shown column → paper column
    key; our values are multiplied by ``scale`` into the paper's unit.
    """
    table = Table(columns=list(columns), digits=digits, label_header=label_header)
    for group in groups:
        published = {shown: group.paper.values.get(key) for shown, key in columns.items()}
        mine = {}
        for method in group.ours:
            values = ours.get(method) or {}
            raw = {shown: lookup(values, shown) for shown in columns}
            mine[method] = {c: None if v is None else v * scale for c, v in raw.items()}
            table.rows.append(Row(method, mine[method]))
        table.rows.append(Row(f"{group.paper.row} (paper, Table {group.paper.table})", published, "reference"))
        for method in group.ours:
            table.rows.append(Row(f"{method} − paper", difference(mine[method], published), "difference"))
    table.bold_best = sum(row.kind == "method" for row in table.rows) > 1  # a lone row has nothing to beat
    return table
