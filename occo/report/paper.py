"""The OCCO paper's published numbers (reference data in ``paper.yaml``) and our difference to them.

Only numbers actually read from the paper are stored, each with its source (url, table, row); a table
that could not be read is kept with ``values: null`` and the reason, so the report can say
"published values not available" instead of inventing anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from occo.data.io import DataError

PAPER_YAML = Path(__file__).with_name("paper.yaml")
KINDS = ("fusion", "detect", "segment")


@dataclass(frozen=True)
class PaperTable:
    """One table of the paper: what it holds (``kind``, ``dataset``) and OCCO's row, when read."""

    table: int
    kind: str | None
    dataset: str | None
    values: dict[str, float] | None
    source: dict[str, str] | None
    missing: str | None


@dataclass(frozen=True)
class PaperReference:
    """The citation and the tables of the paper."""

    citation: dict
    tables: tuple[PaperTable, ...]

    def cite(self) -> str:
        """One-line citation (authors, title, venue, arXiv id, DOI) without web addresses."""
        c = self.citation
        return (
            f"{', '.join(c['authors'])}. \"{c['title']}\". {c['venue']}. "
            f"arXiv:{c['arxiv']}, doi:{c['doi']}."
        )

    def published(self, kind: str, dataset: str) -> PaperTable | None:
        """The table holding OCCO's published ``kind`` numbers on ``dataset`` (None when not read)."""
        for table in self.tables:
            if table.kind == kind and table.dataset == dataset and table.values is not None:
                return table
        return None

    def missing(self) -> list[PaperTable]:
        """Tables whose values could not be read."""
        return [t for t in self.tables if t.values is None]


def difference(ours: dict[str, float | None], paper: dict[str, float]) -> dict[str, float | None]:
    """Per column ``ours - paper``; None where either side has no value."""
    return {
        key: None if ours.get(key) is None or paper.get(key) is None else float(ours[key]) - float(paper[key])
        for key in ours
    }


def _table(entry: object, path: Path) -> PaperTable:
    if not isinstance(entry, dict) or not isinstance(entry.get("table"), int):
        raise DataError(f"{path}: every entry of 'tables' needs an integer 'table', got {entry!r}")
    where = f"{path}: table {entry['table']}"
    kind, values, source = entry.get("kind"), entry.get("values"), entry.get("source")
    if kind is not None and kind not in KINDS:
        raise DataError(f"{where}: kind must be one of {', '.join(KINDS)} or null, got {kind!r}")
    if values is None:
        if not entry.get("missing"):
            raise DataError(f"{where}: values is null, so 'missing' must say why")
        return PaperTable(entry["table"], kind, entry.get("dataset"), None, None, str(entry["missing"]))
    if kind is None or not entry.get("dataset"):
        raise DataError(f"{where}: a table with values needs 'kind' and 'dataset'")
    if not isinstance(values, dict) or not all(isinstance(v, (int, float)) for v in values.values()):
        raise DataError(f"{where}: values must map column names to numbers")
    if not isinstance(source, dict) or not all(source.get(k) for k in ("url", "table", "row")):
        raise DataError(f"{where}: a table with values needs source {{url, table, row}}")
    return PaperTable(
        entry["table"], kind, str(entry["dataset"]), {str(k): float(v) for k, v in values.items()},
        {k: str(v) for k, v in source.items()}, None,
    )


def load_paper(path: str | Path = PAPER_YAML) -> PaperReference:
    """Read and check the reference file; a malformed one raises DataError naming it."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise DataError(f"cannot read paper reference {path}: {err}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("citation"), dict) or not isinstance(doc.get("tables"), list):
        raise DataError(f"{path}: needs a 'citation' mapping and a 'tables' list")
    needed = ("authors", "title", "venue", "arxiv", "doi")
    if absent := [k for k in needed if not doc["citation"].get(k)]:
        raise DataError(f"{path}: citation lacks {', '.join(absent)}")
    return PaperReference(doc["citation"], tuple(_table(entry, path) for entry in doc["tables"]))
