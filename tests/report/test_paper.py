from pathlib import Path

import pytest
import yaml

from occo.data.io import DataError
from occo.report.paper import PAPER_YAML, difference, load_paper

CITATION = {"authors": ["A"], "title": "T", "venue": "V", "arxiv": "1", "doi": "d"}


def write(tmp_path: Path, tables: list[dict]) -> Path:
    path = tmp_path / "paper.yaml"
    path.write_text(yaml.safe_dump({"citation": CITATION, "tables": tables}))
    return path


def test_packaged_reference_has_tables_1_to_5_with_citation() -> None:
    paper = load_paper()
    assert [t.table for t in paper.tables] == [1, 2, 3, 4, 5]
    assert "arXiv:2503.18635" in paper.cite() and "Hui Li" in paper.cite()
    for table in paper.tables:  # every table either has values with a source, or says why not
        assert (table.values is None and table.missing) or (table.values and table.source)
    assert "http" not in paper.cite()


def test_published_lookup_and_missing(tmp_path: Path) -> None:
    path = write(tmp_path, [
        {"table": 1, "kind": "fusion", "dataset": "TNO", "values": {"EN": 7.0},
         "source": {"url": "https://x", "table": "1", "row": "OCCO"}},
        {"table": 2, "kind": None, "dataset": None, "values": None, "missing": "not read"},
    ])
    paper = load_paper(path)
    assert paper.published("fusion", "TNO").values == {"EN": 7.0}
    assert paper.published("fusion", "MSRS") is None
    assert [t.table for t in paper.missing()] == [2]


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"table": 1, "values": None}, "'missing' must say why"),
        ({"table": 1, "kind": "fusion", "dataset": "TNO", "values": {"EN": 7.0}}, "source"),
        ({"table": 1, "kind": "fusion", "values": {"EN": 7.0}, "source": {"url": "u", "table": "1", "row": "r"}}, "dataset"),
        ({"table": 1, "kind": "colour", "values": None, "missing": "x"}, "kind must be"),
        ({"table": "one"}, "integer 'table'"),
    ],
)
def test_malformed_reference_names_the_file(tmp_path: Path, entry: dict, message: str) -> None:
    with pytest.raises(DataError, match=message) as err:
        load_paper(write(tmp_path, [entry]))
    assert "paper.yaml" in str(err.value)


def test_difference_is_ours_minus_paper() -> None:
    assert difference({"EN": 7.5, "SF": None, "AG": 1.0}, {"EN": 7.0, "SF": 3.0}) == {"EN": 0.5, "SF": None, "AG": None}


def test_packaged_file_path() -> None:
    assert PAPER_YAML.name == "paper.yaml" and PAPER_YAML.is_file()
