"""studies.yaml: the paper's studies as params, one home for the docs, `occo study` and the report."""

from pathlib import Path

import pytest
import yaml

from occo.data.io import DataError
from occo.report.paper.grid import load_studies
from occo.report.paper.reference import load_paper

SALIENT = "Precisely segmenting salient objects such as vehicles, pedestrians."


def test_the_packaged_studies_and_their_rows() -> None:
    studies = load_studies()
    assert [s.name for s in studies.studies] == ["table6", "table7", "table8", "table9", "rfn_nest"]
    table6 = studies.get("table6")
    assert table6.row("w0.8-0.2").params == {"omega1": 0.8, "omega2": 0.2}
    assert table6.experiment(table6.row("w0.8-0.2")) == "table6-w0.8-0.2"
    assert studies.get("table7").row("w6-0.1").params == {"omega6": 0.1}
    assert studies.get("table8").row("model4").params == {"ablation.feature_space": "model4"}
    assert studies.get("table8").row("wo-croc").params == {"arch.cross_channel": False}
    assert studies.get("table8").row("occo").params == {}
    assert studies.get("table9").row("salient").params == {"masks.prompt": SALIENT}
    assert studies.for_table(9) is studies.get("table9") and studies.for_table(1) is None
    rfn = studies.get("rfn_nest")
    assert rfn.table is None and rfn.needs == {"arch.name": "rfn_nest"} and rfn.dataset == "MSRS"
    assert studies.settings["omega6"] == 10 and studies.settings["masks.prompt"].startswith("The scene captures")


def test_every_printed_row_of_tables_6_to_9_has_its_params_from_the_studies() -> None:
    paper, studies = load_paper(), load_studies()
    assert paper.settings == studies.settings
    for table in paper.studies():
        study = studies.for_table(table.table)
        assert table.keys == study.varies
        by_row = {r.paper_row: r.params for r in study.rows}
        assert {r.row: r.params for r in table.rows} == by_row  # every row of the study is a printed row, and back
    assert paper.find("ablation", "FMB").methods("FMB")["0:1"].params == {"omega1": 0, "omega2": 1}


def test_names_are_unique_experiment_names() -> None:
    studies = load_studies()
    names = [s.experiment(r) for s in studies.studies for r in s.rows]
    assert len(names) == len(set(names))
    with pytest.raises(DataError, match="no row 'w9'.*w1-0"):
        studies.get("table6").row("w9")
    with pytest.raises(DataError, match="no study 'table10'.*table6, table7"):
        studies.get("table10")


def write(tmp_path: Path, study: dict, settings: dict | None = None) -> Path:
    path = tmp_path / "studies.yaml"
    path.write_text(yaml.safe_dump({"settings": settings or {"omega6": 10}, "studies": [study]}))
    return path


ROW = {"name": "w6-1", "params": {"omega6": 1}}


@pytest.mark.parametrize(
    "study, message",
    [
        ({"name": "a b", "varies": ["omega6"], "rows": [ROW]}, "name 'a b' must be"),
        ({"name": "s", "varies": [], "rows": [ROW]}, "'varies' must list"),
        ({"name": "s", "varies": ["omega6"], "rows": []}, "non-empty 'rows'"),
        ({"name": "s", "varies": ["omega6"], "rows": [{"name": "x", "params": {"omega5": 1}}]}, r"sets \['omega5'\]"),
        ({"name": "s", "table": 6, "varies": ["omega1"], "rows": [ROW]}, "'settings' does not hold"),
        ({"name": "s", "varies": ["omega6"], "rows": [ROW, ROW]}, "two rows share a name"),
        ({"name": "s", "varies": ["omega6"], "rows": [{"name": "x", "params": [1]}]}, "must map dotted param names"),
    ],
)
def test_a_malformed_studies_file_is_named(tmp_path: Path, study: dict, message: str) -> None:
    with pytest.raises(DataError, match=message) as err:
        load_studies(write(tmp_path, study))
    assert "studies.yaml" in str(err.value)
