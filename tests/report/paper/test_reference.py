from pathlib import Path

import pytest
import yaml

from occo.data.io import DataError
from occo.report.paper.reference import PAPER_YAML, column_key, difference, load_paper

CITATION = {"authors": ["A"], "title": "T", "venue": "V", "arxiv": "1", "doi": "d"}
FUSION_ROW = {"dataset": "TNO", "row": "OCCO", "method": "occo", "values": {"EN": 7.0}}


STUDY = {
    "name": "t7",
    "table": 7,
    "varies": ["omega6"],
    "rows": [{"name": "w6-100", "paper_row": "100", "params": {"omega6": 100}}],
}


def write(tmp_path: Path, tables: list[dict]) -> Path:
    path = tmp_path / "paper.yaml"
    path.write_text(yaml.safe_dump({"citation": CITATION, "tables": tables}))
    return path


def studies(tmp_path: Path, *entries: dict, settings: dict | None = None) -> Path:
    path = tmp_path / "studies.yaml"
    path.write_text(yaml.safe_dump({"settings": settings or {"omega6": 10}, "studies": list(entries)}))
    return path


def test_packaged_reference_has_tables_1_to_9_with_citation() -> None:
    paper = load_paper()
    assert [t.table for t in paper.tables] == list(range(1, 10))
    assert "arXiv:2503.18635" in paper.cite() and "Hui Li" in paper.cite()
    assert "http" not in paper.cite()
    assert paper.find("fusion", "TNO").table == 2 and paper.find("fusion", "FMB").table == 1
    assert paper.find("segment", "MSRS").table == 3 and paper.find("detect", "M3FD").table == 5
    assert paper.find("detect", "TNO") is None
    assert [t.table for t in paper.studies()] == [6, 7, 8, 9]
    assert set(paper.find("fusion", "TNO").methods("TNO")) == {
        "DenseFuse",
        "SeAFusion",
        "LRRNet",
        "CDDFuse",
        "CoCoNet",
        "SemLA",
        "SegMiF",
        "M2Fusion",
        "occo",
    }
    assert {"visible", "infrared", "occo"} <= set(paper.find("segment", "MSRS").methods("MSRS"))


def test_lookup_by_kind_and_dataset(tmp_path: Path) -> None:
    paper = load_paper(
        write(
            tmp_path,
            [
                {
                    "table": 1,
                    "task": "fusion",
                    "rows": [FUSION_ROW, {**FUSION_ROW, "dataset": "FMB", "values": {"EN": 6.0}}],
                },
                {
                    "table": 7,
                    "task": "ablation:omega6",
                    "rows": [{"dataset": "FMB", "row": "100", "method": "100", "values": {"EN": 6.8}}],
                },
            ],
        ),
        studies(tmp_path, STUDY),
    )
    table = paper.find("fusion", "TNO")
    assert table.datasets == ["TNO", "FMB"] and table.methods("FMB")["occo"].values == {"EN": 6.0}
    assert paper.find("fusion", "MSRS") is None
    assert paper.studies()[0].rows[0].params == {"omega6": 100} and paper.studies()[0].keys == ("omega6",)
    assert paper.settings == {"omega6": 10}


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"table": "one"}, "integer 'table'"),
        ({"table": 1, "task": "colour", "rows": [FUSION_ROW]}, "task must be one of"),
        ({"table": 1, "task": "fusion", "rows": []}, "non-empty 'rows'"),
        ({"table": 1, "task": "fusion", "rows": [{**FUSION_ROW, "values": {"EN": "7"}}]}, "mapping columns to numbers"),
        (
            {"table": 1, "task": "fusion", "rows": [{"dataset": "TNO", "values": {"EN": 7.0}}]},
            "string 'dataset', 'row'",
        ),
    ],
)
def test_malformed_reference_names_the_file(tmp_path: Path, entry: dict, message: str) -> None:
    with pytest.raises(DataError, match=message) as err:
        load_paper(write(tmp_path, [entry]))
    assert "paper.yaml" in str(err.value)


ABLATION = {"table": 7, "task": "ablation:omega6", "rows": [{**FUSION_ROW, "dataset": "FMB", "row": "100"}]}


@pytest.mark.parametrize(
    "study, message",
    [
        ({**STUDY, "table": 6}, "ablation table 7 has no study"),
        ({**STUDY, "rows": [{"name": "w6-1", "paper_row": "1", "params": {"omega6": 1}}]}, r"paper_row \['100'\]"),
    ],
)
def test_an_ablation_table_needs_its_study(tmp_path: Path, study: dict, message: str) -> None:
    with pytest.raises(DataError, match=message) as err:
        load_paper(write(tmp_path, [ABLATION]), studies(tmp_path, study))
    assert "paper.yaml" in str(err.value) and "studies.yaml" in str(err.value)


def test_difference_is_ours_minus_paper() -> None:
    assert difference({"EN": 7.5, "SF": None, "AG": 1.0}, {"EN": 7.0, "SF": 3.0}) == {"EN": 0.5, "SF": None, "AG": None}


def test_column_keys() -> None:
    assert column_key("", "EN") == "EN" and column_key("person", "AP50") == "person/AP50"


def test_packaged_file_path() -> None:
    assert PAPER_YAML.name == "paper.yaml" and PAPER_YAML.is_file()
