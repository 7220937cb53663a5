import pandas as pd

from occo.report.render.tables import Row, Table


def make_table() -> Table:
    frame = pd.DataFrame({"EN": [1.0, 3.0, None], "SF": [2.0, 2.0, 1.0], "n": [2, 2, 2]}, index=["a", "b", "c"])
    return Table.from_frame(frame, ["EN", "SF"], info_columns=["n"], digits=2)


def test_best_value_per_column_is_bold_and_ties_both() -> None:
    md = make_table().to_markdown().splitlines()
    assert md[0] == "| Method | n | EN | SF |"
    assert md[2] == "| a | 2 | 1.00 | **2.00** |"
    assert md[3] == "| b | 2 | **3.00** | **2.00** |"
    assert md[4] == "| c | 2 | – | 1.00 |"


def test_reference_and_difference_rows_never_count_as_best() -> None:
    table = make_table()
    table.rows.append(Row("paper", {"EN": 9.0, "SF": 0.5}, "reference"))
    table.rows.append(Row("b − paper", {"EN": -6.0, "SF": 1.5}, "difference"))
    assert table.best() == {"EN": 3.0, "SF": 2.0}
    md = table.to_markdown().splitlines()
    assert md[5] == "| *paper* | – | *9.00* | *0.50* |"
    assert md[6] == "| *b − paper* | – | *-6.00* | *+1.50* |"


def test_html_marks_best_and_row_kinds() -> None:
    table = make_table()
    table.rows.append(Row("paper", {"EN": 9.0, "SF": 0.5}, "reference"))
    out = table.to_html()
    assert out.count('<td class="best">') == 3
    assert '<tr class="reference"><th>paper</th>' in out
    assert "<th>n</th>" in out and "<td>2</td>" in out


def test_labels_are_escaped() -> None:
    table = Table(columns=["x"], rows=[Row("a|<b>", {"x": 1.0})])
    assert "a\\|<b>" in table.to_markdown()
    assert "a|&lt;b&gt;" in table.to_html()
