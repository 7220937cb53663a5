"""Label converters on hand-made files: YOLO remapping, Pascal VOC XML to YOLO, round trips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from occo.data.io import DataError
from occo.downstream.labels import (
    class_mapping,
    clip_boxes,
    convert_label,
    read_class_names,
    read_voc,
    read_yolo,
    remap_classes,
    voc_to_yolo,
    write_yolo,
    xyxy_to_yolo,
    yolo_to_xyxy,
)
from support import SHARED

SHARED_MSRS = SHARED / "datasets/MSRS/labels/det"

VOC = """<annotation>
  <filename>00042.png</filename>
  <size><width>1024</width><height>768</height><depth>3</depth></size>
  <object><name>People</name><difficult>0</difficult>
    <bndbox><xmin>100</xmin><ymin>200</ymin><xmax>140</xmax><ymax>300</ymax></bndbox></object>
  <object><name>Car</name>
    <bndbox><xmin>500.5</xmin><ymin>400</ymin><xmax>700</xmax><ymax>520.25</ymax></bndbox></object>
  <object><name>Truck</name>
    <bndbox><xmin>0</xmin><ymin>0</ymin><xmax>1024</xmax><ymax>768</ymax></bndbox></object>
  <object><name>Dog</name>
    <bndbox><xmin>10</xmin><ymin>10</ymin><xmax>20</xmax><ymax>20</ymax></bndbox></object>
</annotation>
"""
M3FD = ["People", "Car", "Bus", "Lamp", "Motorcycle", "Truck"]


def test_read_yolo_tolerates_spacing_and_missing_newline(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("0  0.5  0.25  0.1  0.2  \n\n2 0.75 0.5 0.3 0.4", encoding="utf-8")
    np.testing.assert_allclose(read_yolo(path), [[0, 0.5, 0.25, 0.1, 0.2], [2, 0.75, 0.5, 0.3, 0.4]])
    (tmp_path / "e.txt").write_text("", encoding="utf-8")
    assert read_yolo(tmp_path / "e.txt").shape == (0, 5)


@pytest.mark.parametrize("line", ["0 0.5 0.5 0.1", "x 0.5 0.5 0.1 0.1", "1.5 0.5 0.5 0.1 0.1", "0 0.5 0.5 -0.1 0.1"])
def test_read_yolo_rejects_bad_lines_naming_the_file(tmp_path: Path, line: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(f"0 0.1 0.1 0.1 0.1\n{line}\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.txt:2"):
        read_yolo(path)


def test_yolo_write_read_round_trip(tmp_path: Path) -> None:
    boxes = np.array([[1, 0.123456789, 0.5, 0.0123456789, 0.25], [0, 0.999, 0.001, 0.002, 0.002]])
    write_yolo(tmp_path / "b.txt", boxes)
    np.testing.assert_allclose(read_yolo(tmp_path / "b.txt"), boxes, atol=1e-6, rtol=0)


def test_remap_msrs_ids_onto_a_task_class_list() -> None:
    mapping = class_mapping(["person", "bicycle", "car"], ["Person", "Car"])
    assert mapping == {0: 0, 2: 1}
    boxes = np.array([[0, 0.1, 0.1, 0.1, 0.1], [1, 0.2, 0.2, 0.1, 0.1], [2, 0.3, 0.3, 0.1, 0.1]])
    out = remap_classes(boxes, mapping)
    np.testing.assert_array_equal(out[:, 0], [0, 1])
    np.testing.assert_array_equal(out[:, 1:], boxes[[0, 2], 1:])


def test_convert_yolo_counts_dropped_classes_and_rejects_unknown_ids(tmp_path: Path) -> None:
    path = tmp_path / "m.txt"
    path.write_text("0 0.5 0.5 0.2 0.2\n1 0.4 0.4 0.1 0.1\n2 0.3 0.3 0.1 0.1\n", encoding="utf-8")
    boxes, dropped = convert_label(path, "yolo", ["person", "bicycle", "car"], ["person", "car"])
    np.testing.assert_array_equal(boxes[:, 0], [0, 1])
    assert dropped == {"bicycle": 1}
    with pytest.raises(DataError, match=r"class ids \[2\]"):
        convert_label(path, "yolo", ["person", "bicycle"], ["person"])
    assert convert_label(None, "yolo", ["person"], ["person"])[0].shape == (0, 5)


def test_voc_to_yolo_values(tmp_path: Path) -> None:
    path = tmp_path / "00042.xml"
    path.write_text(VOC, encoding="utf-8")
    boxes, dropped = voc_to_yolo(path, M3FD)
    assert dropped == {"Dog": 1}
    expected = [
        [0, 120 / 1024, 250 / 768, 40 / 1024, 100 / 768],
        [1, 600.25 / 1024, 460.125 / 768, 199.5 / 1024, 120.25 / 768],
        [5, 0.5, 0.5, 1.0, 1.0],
    ]
    np.testing.assert_allclose(boxes, expected, atol=1e-12)


def test_voc_round_trip_through_yolo_text(tmp_path: Path) -> None:
    path = tmp_path / "00042.xml"
    path.write_text(VOC, encoding="utf-8")
    names, corners, (w, h) = read_voc(path)
    boxes, _ = convert_label(path, "voc", None, M3FD)
    write_yolo(tmp_path / "00042.txt", boxes)
    back = yolo_to_xyxy(read_yolo(tmp_path / "00042.txt")[:, 1:], w, h)
    np.testing.assert_allclose(back, corners[:3], atol=1e-6 * max(w, h), rtol=0)
    np.testing.assert_allclose(back / [w, h, w, h], corners[:3] / [w, h, w, h], atol=1e-6, rtol=0)
    assert names[:3] == ["People", "Car", "Truck"]


def test_xyxy_yolo_inverse() -> None:
    corners = np.random.default_rng(0).uniform(0, 1, (50, 4)) * [640, 480, 640, 480]
    corners = np.concatenate(
        [np.minimum(corners[:, :2], corners[:, 2:]), np.maximum(corners[:, :2], corners[:, 2:])], 1
    )
    np.testing.assert_allclose(yolo_to_xyxy(xyxy_to_yolo(corners, 640, 480), 640, 480), corners, atol=1e-9)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("<annotation><object>", "not a Pascal VOC"),
        ("<annotation><object><name>Car</name></object></annotation>", "size"),
        ("<annotation><size><width>0</width><height>5</height></size></annotation>", "not positive"),
        (
            "<annotation><size><width>5</width><height>5</height></size>"
            "<object><name>Car</name><bndbox><xmin>1</xmin></bndbox></object></annotation>",
            "bndbox",
        ),
    ],
)
def test_read_voc_errors_name_the_file(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "broken.xml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=match) as info:
        read_voc(path)
    assert "broken.xml" in str(info.value)


def test_clip_boxes_cuts_to_the_image_and_drops_empty() -> None:
    boxes = np.array([[0, 0.95, 0.5, 0.2, 0.2], [1, 0.5, 0.5, 0.2, 0.2], [0, 1.2, 0.5, 0.1, 0.1]])
    out = clip_boxes(boxes)
    assert out.shape == (2, 5)
    np.testing.assert_allclose(out[0], [0, 0.925, 0.5, 0.15, 0.2])
    np.testing.assert_allclose(out[1], boxes[1])


def test_read_class_names(tmp_path: Path) -> None:
    (tmp_path / "classes.txt").write_text("0 person\n1 bicycle\n2 car\n", encoding="utf-8")
    assert read_class_names(tmp_path / "classes.txt") == ["person", "bicycle", "car"]
    (tmp_path / "plain.txt").write_text("People\nCar\n", encoding="utf-8")
    assert read_class_names(tmp_path / "plain.txt") == ["People", "Car"]
    (tmp_path / "gap.txt").write_text("0 person\n2 car\n", encoding="utf-8")
    with pytest.raises(DataError, match="out of order"):
        read_class_names(tmp_path / "gap.txt")


@pytest.mark.skipif(not SHARED_MSRS.is_dir(), reason="../shared/datasets/MSRS not present")
def test_shared_msrs_labels_convert() -> None:
    names = read_class_names(SHARED_MSRS / "classes.txt")
    assert names == ["person", "bicycle", "car"]
    files = sorted((SHARED_MSRS / "fusion").glob("*.txt"))
    assert files
    for path in files:
        raw = read_yolo(path)
        boxes, dropped = convert_label(path, "yolo", names, names)
        assert not dropped
        assert len(boxes) == len(raw)
        assert boxes[:, 1:].min() >= 0 and boxes[:, 1:].max() <= 1
