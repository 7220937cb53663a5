"""paper.yaml holds exactly the paper's tables as transcribed in ../shared (tables.csv), nothing typed by hand."""

from pathlib import Path

import pytest

from occo.data.io import DataError
from occo.report.paper.reference import PAPER_YAML, load_paper
from occo.report.paper.tables_csv import main, paper_document, read_tables_csv
from support import SHARED

TABLES_CSV = SHARED / "reference" / "occo-paper" / "tables.csv"
needs_csv = pytest.mark.skipif(not TABLES_CSV.is_file(), reason="../shared/reference/occo-paper/tables.csv is absent")


@needs_csv
def test_every_value_of_paper_yaml_equals_the_csv() -> None:
    expected = {
        (int(r["table"]), r["dataset"], r["task"], r["method"], r["cls"], r["metric"]): float(r["value"])
        for r in read_tables_csv(TABLES_CSV)
    }
    stored = {}
    for table in load_paper().tables:
        for row in table.rows:
            for key, value in row.values.items():
                cls, _, metric = key.rpartition("/")
                stored[(table.table, row.dataset, table.task, row.row, cls, metric)] = value
    assert len(expected) == 562  # Tables 1-9, one value a row, no duplicate keys
    assert stored == expected


@needs_csv
def test_packaged_file_is_what_the_generator_writes() -> None:
    assert PAPER_YAML.read_text(encoding="utf-8") == paper_document(read_tables_csv(TABLES_CSV))


def write_csv(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "tables.csv"
    path.write_text("table,dataset,task,method,cls,metric,value\n" + body, encoding="utf-8")
    return path


def test_generator_renames_methods_and_the_studies_give_ablation_params(tmp_path: Path) -> None:
    csv_path = write_csv(
        tmp_path,
        "1,FMB,fusion,OCCO,,EN,7.035\n4,MSRS,detect,Visible,person,AP50,0.511\n7,FMB,ablation:omega6,100,,EN,6.870\n",
    )
    out = tmp_path / "paper.yaml"
    main([str(csv_path), "--out", str(out)])
    paper = load_paper(out)
    assert paper.find("fusion", "FMB").methods("FMB")["occo"].values == {"EN": 7.035}
    assert paper.find("fusion", "FMB").methods("FMB")["occo"].row == "OCCO"
    assert paper.find("detect", "MSRS").methods("MSRS")["visible"].values == {"person/AP50": 0.511}
    (study,) = paper.studies()
    assert study.keys == ("omega6",) and study.rows[0].params == {"omega6": 100.0}
    assert paper.settings["omega6"] == 10 and paper.settings["masks.prompt"].startswith("The scene captures")


@pytest.mark.parametrize(
    "text, message",
    [
        ("table,dataset,method,value\n1,FMB,OCCO,7\n", "columns must be"),
        ("table,dataset,task,method,cls,metric,value\n1,FMB,fusion,OCCO,,EN,7.o35\n", r"tables.csv:2: value '7.o35'"),
    ],
)
def test_malformed_csv_names_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "tables.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        read_tables_csv(path)


def test_cli_error_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"tables \[10\]"):
        main([str(write_csv(tmp_path, "10,FMB,fusion,OCCO,,EN,7\n")), "--out", str(tmp_path / "p.yaml")])
    assert not (tmp_path / "p.yaml").exists()
