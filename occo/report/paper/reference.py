"""The OCCO paper's published numbers (reference data in ``paper.yaml``) and our difference to them.

``paper.yaml`` is generated from the transcription of the paper's Tables 1–9 (``tables_csv.py``); every
value keeps its source (table, paper row). Tables 1–2 hold fusion metrics per dataset, Table 3
segmentation IoU (%), Tables 4–5 detection AP, Tables 6–9 the ablations on FMB; the params each of
their rows sets and the paper's settings come from ``studies.yaml`` (``grid.py``), their one home.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from occo.data.io import DataError
from occo.report.paper.grid import STUDIES_YAML, Studies, load_studies

PAPER_YAML = Path(__file__).with_name("paper.yaml")
KINDS = ("fusion", "detect", "segment", "ablation")


def column_key(cls: str, metric: str) -> str:
    """A paper value's column: the metric alone (EN, mIoU) or ``<class>/<metric>`` (person/AP50)."""
    return f"{cls}/{metric}" if cls else metric


@dataclass(frozen=True)
class PaperRow:
    """One printed row of a table on one dataset: where it was read (``table``, ``row``), the report's
    name for it (``method``), its values by column key, and for an ablation row the params that set it."""

    table: int
    dataset: str
    row: str
    method: str
    values: dict[str, float]
    params: dict[str, object] | None = None


@dataclass(frozen=True)
class PaperTable:
    """A table of the paper: its task (``fusion``, ``segment``, ``detect`` or ``ablation:<study>``),
    caption, unit ('' or '%'), the params an ablation varies (``keys``) and its rows."""

    table: int
    task: str
    caption: str
    unit: str
    keys: tuple[str, ...]
    rows: tuple[PaperRow, ...]

    @property
    def kind(self) -> str:
        return self.task.split(":", 1)[0]

    @property
    def datasets(self) -> list[str]:
        return list(dict.fromkeys(r.dataset for r in self.rows))

    def methods(self, dataset: str) -> dict[str, PaperRow]:
        """The rows on ``dataset`` by the report's method name."""
        return {r.method: r for r in self.rows if r.dataset == dataset}


@dataclass(frozen=True)
class PaperReference:
    """The citation, the paper's default settings (as params) and its tables."""

    citation: dict
    settings: dict[str, object]
    tables: tuple[PaperTable, ...]

    def cite(self) -> str:
        """One-line citation (authors, title, venue, arXiv id, DOI) without web addresses."""
        c = self.citation
        return f'{", ".join(c["authors"])}. "{c["title"]}". {c["venue"]}. arXiv:{c["arxiv"]}, doi:{c["doi"]}.'

    def find(self, kind: str, dataset: str) -> PaperTable | None:
        """The table holding ``kind`` results (fusion, detect, segment) on ``dataset``, if the paper has one."""
        return next((t for t in self.tables if t.kind == kind and dataset in t.datasets), None)

    def studies(self) -> list[PaperTable]:
        """The ablation tables (6–9)."""
        return [t for t in self.tables if t.kind == "ablation"]


def difference(ours: dict[str, float | None], paper: dict[str, float | None]) -> dict[str, float | None]:
    """Per column ``ours - paper``; None where either side has no value."""
    return {
        key: None if ours.get(key) is None or paper.get(key) is None else float(ours[key]) - float(paper[key])
        for key in ours
    }


def _row(entry: object, table: int, where: str) -> PaperRow:
    if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) for k in ("dataset", "row", "method")):
        raise DataError(f"{where}: every row needs string 'dataset', 'row' and 'method', got {entry!r}")
    values = entry.get("values")
    if (
        not isinstance(values, dict)
        or not values
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values.values())
    ):
        raise DataError(f"{where}: row {entry['row']!r} needs 'values' mapping columns to numbers")
    return PaperRow(
        table, entry["dataset"], entry["row"], entry["method"], {str(k): float(v) for k, v in values.items()}
    )


def _table(entry: object, path: Path) -> PaperTable:
    if not isinstance(entry, dict) or not isinstance(entry.get("table"), int):
        raise DataError(f"{path}: every entry of 'tables' needs an integer 'table', got {entry!r}")
    where = f"{path}: table {entry['table']}"
    task = entry.get("task")
    if not isinstance(task, str) or task.split(":", 1)[0] not in KINDS:
        raise DataError(f"{where}: task must be one of {', '.join(KINDS)} (ablation as ablation:<study>), got {task!r}")
    rows = entry.get("rows")
    if not isinstance(rows, list) or not rows:
        raise DataError(f"{where}: needs a non-empty 'rows' list")
    return PaperTable(
        entry["table"],
        task,
        str(entry.get("caption") or ""),
        str(entry.get("unit") or ""),
        (),
        tuple(_row(r, entry["table"], where) for r in rows),
    )


def with_study(table: PaperTable, studies: Studies, where: str) -> PaperTable:
    """An ablation table with the params its study varies (``keys``) and the params of each printed row,
    from the studies file; DataError when the table has no study or a row no setting there."""
    study = studies.for_table(table.table)
    if study is None:
        raise DataError(f"{where}: ablation table {table.table} has no study with 'table: {table.table}'")
    by_row = {r.paper_row: r for r in study.rows if r.paper_row is not None}
    if missing := [r.row for r in table.rows if r.row not in by_row]:
        raise DataError(f"{where}: study {study.name} has no row with paper_row {missing} of table {table.table}")
    rows = tuple(replace(r, params=dict(by_row[r.row].params)) for r in table.rows)
    return replace(table, keys=study.varies, rows=rows)


def load_paper(path: str | Path = PAPER_YAML, studies: str | Path = STUDIES_YAML) -> PaperReference:
    """Read and check the reference file, with the settings and the ablation rows' params of the studies
    file; a malformed one raises DataError naming it."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise DataError(f"cannot read paper reference {path}: {err}") from None
    if (
        not isinstance(doc, dict)
        or not isinstance(doc.get("citation"), dict)
        or not isinstance(doc.get("tables"), list)
    ):
        raise DataError(f"{path}: needs a 'citation' mapping and a 'tables' list")
    needed = ("authors", "title", "venue", "arxiv", "doi")
    if absent := [k for k in needed if not doc["citation"].get(k)]:
        raise DataError(f"{path}: citation lacks {', '.join(absent)}")
    grid = load_studies(studies)
    tables = tuple(_table(entry, path) for entry in doc["tables"])
    tables = tuple(with_study(t, grid, f"{path} with {studies}") if t.kind == "ablation" else t for t in tables)
    return PaperReference(doc["citation"], dict(grid.settings), tables)
