"""The paper's studies as params (``studies.yaml``): the settings they start from and each study's grid.

One file defines them for everything that needs them: ``occo study`` queues and shows a study's grid,
``python -m occo.study.docs`` writes the grids into docs/experiments.md, and :func:`load_paper` attaches
each row's params to the paper's printed rows of Tables 6–9, which the report's classifier compares
(``studies.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from occo.data.io import DataError

STUDIES_YAML = Path(__file__).with_name("studies.yaml")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
"""A study or row name: one piece of a DVC experiment name (a git ref component)."""


@dataclass(frozen=True)
class StudyRow:
    """One setting of a study: its name, the params it sets (dotted, as ``dvc exp run -S`` takes them) and the
    paper's printed row it reproduces (None: the paper prints no row for it)."""

    name: str
    params: dict[str, object]
    paper_row: str | None = None


@dataclass(frozen=True)
class Study:
    """A study of the paper: the params it varies and its rows; ``table`` is the paper's table (None: the paper
    shows no table), ``dataset`` where its scores are read, ``needs`` params the schema must accept first."""

    name: str
    section: str
    what: str
    dataset: str
    varies: tuple[str, ...]
    rows: tuple[StudyRow, ...]
    table: int | None = None
    needs: dict[str, object] = field(default_factory=dict)

    def experiment(self, row: StudyRow) -> str:
        """The DVC experiment name of ``row``: ``<study>-<row>`` (``table6-w0.8-0.2``)."""
        return f"{self.name}-{row.name}"

    def row(self, name: str) -> StudyRow:
        """The row called ``name``; DataError naming the rows there are."""
        for row in self.rows:
            if row.name == name:
                return row
        raise DataError(f"study {self.name} has no row {name!r} (rows: {', '.join(r.name for r in self.rows)})")


@dataclass(frozen=True)
class Studies:
    """The paper's configuration as params (``settings``) and its studies."""

    settings: dict[str, object]
    studies: tuple[Study, ...]

    def get(self, name: str) -> Study:
        """The study called ``name``; DataError naming the studies there are."""
        for study in self.studies:
            if study.name == name:
                return study
        raise DataError(f"no study {name!r} (studies: {', '.join(s.name for s in self.studies)})")

    def for_table(self, table: int) -> Study | None:
        """The study of the paper's table ``table``, if one is defined."""
        return next((s for s in self.studies if s.table == table), None)


def _name(value: object, where: str) -> str:
    if not isinstance(value, str) or not NAME.match(value):
        raise DataError(f"{where}: name {value!r} must be letters, digits, '.', '_' or '-' (an experiment name)")
    return value


def _mapping(value: object, where: str) -> dict[str, object]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise DataError(f"{where} must map dotted param names to values, got {value!r}")
    return dict(value)


def _row(entry: object, varies: tuple[str, ...], where: str) -> StudyRow:
    if not isinstance(entry, dict):
        raise DataError(f"{where}: every row needs 'name' and 'params', got {entry!r}")
    name = _name(entry.get("name"), where)
    params = _mapping(entry.get("params"), f"{where}: row {name} 'params'")
    if stray := sorted(set(params) - set(varies)):
        raise DataError(f"{where}: row {name} sets {stray}, which the study does not vary ({list(varies)})")
    paper_row = entry.get("paper_row")
    if paper_row is not None and not isinstance(paper_row, str):
        raise DataError(f"{where}: row {name} 'paper_row' must be the paper's row as text, got {paper_row!r}")
    return StudyRow(name, params, paper_row)


def _study(entry: object, settings: dict[str, object], path: Path) -> Study:
    if not isinstance(entry, dict):
        raise DataError(f"{path}: every study needs 'name', 'varies' and 'rows', got {entry!r}")
    name = _name(entry.get("name"), f"{path}: study")
    where = f"{path}: study {name}"
    varies = entry.get("varies")
    if not isinstance(varies, list) or not varies or not all(isinstance(k, str) for k in varies):
        raise DataError(f"{where}: 'varies' must list the params it varies")
    table = entry.get("table")
    if table is not None and (not isinstance(table, int) or isinstance(table, bool)):
        raise DataError(f"{where}: 'table' must be the paper's table number, got {table!r}")
    if table is not None and (unknown := [k for k in varies if k not in settings]):
        raise DataError(f"{where}: varies {unknown}, which 'settings' does not hold")
    rows = entry.get("rows")
    if not isinstance(rows, list) or not rows:
        raise DataError(f"{where}: needs a non-empty 'rows' list")
    parsed = tuple(_row(r, tuple(varies), where) for r in rows)
    if len({r.name for r in parsed}) != len(parsed):
        raise DataError(f"{where}: two rows share a name")
    return Study(
        name,
        str(entry.get("section") or ""),
        " ".join(str(entry.get("what") or "").split()),
        str(entry.get("dataset") or "FMB"),
        tuple(varies),
        parsed,
        table,
        _mapping(entry.get("needs") or {}, f"{where}: 'needs'"),
    )


def load_studies(path: str | Path = STUDIES_YAML) -> Studies:
    """Read and check the studies file; a malformed one raises DataError naming it."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise DataError(f"cannot read studies {path}: {err}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("studies"), list):
        raise DataError(f"{path}: needs 'settings' (the paper's params) and a 'studies' list")
    settings = _mapping(doc.get("settings") or {}, f"{path}: 'settings'")
    studies = tuple(_study(entry, settings, path) for entry in doc["studies"])
    if len({s.name for s in studies}) != len(studies):
        raise DataError(f"{path}: two studies share a name")
    return Studies(settings, studies)
