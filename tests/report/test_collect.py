from pathlib import Path

import pytest

from occo.data.io import DataError
from occo.report.collect import collect, detect_frame, read_curve, segment_frame


def test_collect_reads_every_input(workspace: Path) -> None:
    data = collect(workspace)
    frame = data.fusion["synthetic"]
    assert list(frame.index) == ["visible", "max", "occo"]
    assert frame.at["occo", "EN"] == 0.5 and frame.at["max", "n"] == 2
    assert frame["SCD"].isna().sum() == 1
    assert set(data.detect["synthetic"]) == {"occo", "visible"}
    assert data.train_summary["step"] == 3
    assert sorted(data.curves) == ["train/lr", "train/pixel", "train/total"]
    assert data.curves["train/total"]["value"].tolist() == [3.0, 2.0, 1.5]
    assert data.curves["train/total"]["step"].tolist() == [1, 2, 3]


def test_absent_inputs_are_empty(tmp_path: Path) -> None:
    data = collect(tmp_path)
    assert data.fusion == {} and data.detect == {} and data.segment == {}
    assert data.train_summary is None and data.curves == {}


def test_downstream_frames(workspace: Path) -> None:
    data = collect(workspace)
    det = detect_frame(data.detect["synthetic"])
    assert list(det.columns) == ["person", "car", "mAP50", "mAP50-95"]
    assert det.at["visible", "mAP50"] == pytest.approx(0.6)
    assert det.at["occo", "mAP50-95"] == pytest.approx(0.25)
    seg = segment_frame(data.segment["synthetic"])
    assert list(seg.columns) == ["background", "car", "person", "bike", "mIoU"]
    assert seg["bike"].isna().all() and seg.at["infrared", "mIoU"] == 0.4


def test_malformed_json_names_the_file(workspace: Path) -> None:
    bad = workspace / "metrics/fusion/TNO.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="TNO.json"):
        collect(workspace)


def test_fusion_entry_without_count_is_rejected(workspace: Path) -> None:
    (workspace / "metrics/fusion/TNO.json").write_text('{"occo": {"EN": 1.0}}')
    with pytest.raises(DataError, match="TNO.json.*'n'"):
        collect(workspace)


def test_detection_file_missing_keys(workspace: Path) -> None:
    (workspace / "metrics/detect/synthetic/max.json").write_text('{"ap50": {"all": 0.1}}')
    with pytest.raises(DataError, match="max.json: missing ap50_95"):
        collect(workspace)


def test_curve_needs_step_and_one_value(tmp_path: Path) -> None:
    path = tmp_path / "x.tsv"
    path.write_text("step\ta\tb\n1\t2\t3\n")
    with pytest.raises(DataError, match="x.tsv"):
        read_curve(path)
    path.write_text("step\ttotal\n1\t2.5\n")
    assert read_curve(path)["value"].tolist() == [2.5]
