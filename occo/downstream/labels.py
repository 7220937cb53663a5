"""Detection label converters: every source format becomes YOLO text (``cls cx cy w h``, normalised).

Boxes travel as ``(n, 5)`` float64 arrays ``[class, cx, cy, w, h]`` with the centre and size divided
by the image width/height (YOLO), or as pixel corners ``[x0, y0, x1, y1]`` (Pascal VOC). One reader
per source format:

- YOLO text with its own class ids (e.g. MSRS ``0 person, 1 bicycle, 2 car``): :func:`read_yolo`,
  then :func:`remap_classes` onto the class list of the task;
- Pascal VOC XML (M3FD ``Annotation/*.xml``): :func:`read_voc` then :func:`voc_to_yolo`.

Both end in :func:`clip_boxes` (ultralytics discards a whole label file when a coordinate leaves
[0, 1] by more than 1 %) and :func:`write_yolo`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from occo.data.io import DataError, write_text_atomic

FORMATS = ("yolo", "voc")


def read_yolo(path: Path) -> np.ndarray:
    """YOLO boxes of ``path`` as a ``(n, 5)`` array ``[class, cx, cy, w, h]``; an empty file gives ``(0, 5)``.

    Any run of whitespace separates values (some published files use double spaces). DataError naming
    the file for a line without five numbers, a non-integer class, or a negative size.
    """
    rows = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            values = [float(v) for v in fields]
        except ValueError:
            raise DataError(f"{path}:{number}: not a YOLO box (cls cx cy w h): {line.strip()!r}") from None
        if len(values) != 5 or values[0] != int(values[0]) or values[0] < 0:
            raise DataError(f"{path}:{number}: not a YOLO box (cls cx cy w h): {line.strip()!r}")
        if values[3] < 0 or values[4] < 0:
            raise DataError(f"{path}:{number}: negative box size: {line.strip()!r}")
        rows.append(values)
    return np.asarray(rows, np.float64).reshape(-1, 5)


def write_yolo(path: Path, boxes: np.ndarray) -> None:
    """Write ``[class, cx, cy, w, h]`` rows as YOLO text (8 decimals: round-trip error below 1e-8), atomically."""
    lines = [f"{int(c)} {cx:.8f} {cy:.8f} {w:.8f} {h:.8f}\n" for c, cx, cy, w, h in np.asarray(boxes)]
    write_text_atomic(path, "".join(lines))


def remap_classes(boxes: np.ndarray, mapping: dict[int, int]) -> np.ndarray:
    """Boxes with class ids replaced through ``mapping``; boxes of unmapped ids are dropped."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 5)
    source = boxes[:, 0].astype(np.int64)
    keep = np.isin(source, list(mapping))
    out = boxes[keep].copy()
    out[:, 0] = [mapping[int(c)] for c in source[keep]]
    return out


def class_mapping(source: list[str], target: list[str]) -> dict[int, int]:
    """Id map from a source class list to a target list by name (case-insensitive); names absent from
    ``target`` are left out, so their boxes are dropped."""
    index = {name.lower(): i for i, name in enumerate(target)}
    return {i: index[name.lower()] for i, name in enumerate(source) if name.lower() in index}


def read_voc(path: Path) -> tuple[list[str], np.ndarray, tuple[int, int]]:
    """Object names, pixel corners ``(n, 4)`` ``[x0, y0, x1, y1]`` and ``(width, height)`` of a VOC XML file.

    DataError naming the file for unparsable XML, a missing or non-positive ``<size>``, or an object
    without a complete ``<bndbox>``.
    """
    try:
        tree = ET.parse(path)
    except ET.ParseError as err:
        raise DataError(f"{path}: not a Pascal VOC XML file ({err})") from None
    node = tree.getroot()
    try:
        width = int(float(node.findtext("size/width", "")))
        height = int(float(node.findtext("size/height", "")))
    except ValueError:
        raise DataError(f"{path}: no <size><width>/<height>") from None
    if width <= 0 or height <= 0:
        raise DataError(f"{path}: image size {width}x{height} is not positive")
    names, corners = [], []
    for obj in node.iter("object"):
        name = (obj.findtext("name") or "").strip()
        try:
            corners.append([float(obj.findtext(f"bndbox/{k}", "")) for k in ("xmin", "ymin", "xmax", "ymax")])
        except ValueError:
            raise DataError(f"{path}: object {name!r} has no complete <bndbox>") from None
        names.append(name)
    return names, np.asarray(corners, np.float64).reshape(-1, 4), (width, height)


def xyxy_to_yolo(corners: np.ndarray, width: int, height: int) -> np.ndarray:
    """Pixel corners ``[x0, y0, x1, y1]`` → normalised ``[cx, cy, w, h]``:
    ``cx = (x0 + x1) / 2W``, ``cy = (y0 + y1) / 2H``, ``w = (x1 - x0) / W``, ``h = (y1 - y0) / H``.

    VOC corners are taken as continuous pixel-edge coordinates (no 1-pixel shift); the 1-based VOC
    convention would move boxes by at most one pixel.
    """
    c = np.asarray(corners, np.float64).reshape(-1, 4)
    scale = np.array([width, height], np.float64)
    centre = (c[:, :2] + c[:, 2:]) / 2 / scale
    size = (c[:, 2:] - c[:, :2]) / scale
    return np.concatenate([centre, size], axis=1)


def yolo_to_xyxy(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Normalised ``[cx, cy, w, h]`` → pixel corners ``[x0, y0, x1, y1]`` (inverse of :func:`xyxy_to_yolo`)."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    scale = np.array([width, height], np.float64)
    half = b[:, 2:] * scale / 2
    centre = b[:, :2] * scale
    return np.concatenate([centre - half, centre + half], axis=1)


def voc_to_yolo(path: Path, classes: list[str]) -> tuple[np.ndarray, dict[str, int]]:
    """YOLO boxes ``[class, cx, cy, w, h]`` of a VOC file, classes indexed by name in ``classes``
    (case-insensitive), and the count of objects dropped per name not in ``classes``."""
    names, corners, (width, height) = read_voc(path)
    index = {name.lower(): i for i, name in enumerate(classes)}
    keep = np.array([n.lower() in index for n in names], bool)
    dropped: dict[str, int] = {}
    for name in (n for n, k in zip(names, keep) if not k):
        dropped[name] = dropped.get(name, 0) + 1
    ids = np.array([index[n.lower()] for n, k in zip(names, keep) if k], np.float64)
    boxes = np.concatenate([ids[:, None], xyxy_to_yolo(corners[keep], width, height)], axis=1)
    return boxes, dropped


def clip_boxes(boxes: np.ndarray) -> np.ndarray:
    """Boxes cut to the image: corners clipped to [0, 1], then back to centre/size; boxes left with
    no area are dropped."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 5)
    corners = np.clip(yolo_to_xyxy(boxes[:, 1:], 1, 1), 0.0, 1.0)
    out = np.concatenate([boxes[:, :1], xyxy_to_yolo(corners, 1, 1)], axis=1)
    return out[(out[:, 3] > 0) & (out[:, 4] > 0)]


def read_class_names(path: Path) -> list[str]:
    """Class names of a ``classes.txt`` (``<id> <name>`` or ``<name>`` per line, ids in order)."""
    names = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) >= 2 and fields[0].isdigit():
            if int(fields[0]) != len(names):
                raise DataError(f"{path}:{number}: class id {fields[0]} out of order (expected {len(names)})")
            fields = fields[1:]
        names.append(" ".join(fields))
    return names


def convert_label(
    src: Path | None, fmt: str, source_classes: list[str] | None, classes: list[str]
) -> tuple[np.ndarray, dict[str, int]]:
    """YOLO boxes in the task's ``classes`` of one label file in format ``fmt`` (``yolo`` or ``voc``),
    clipped to the image, and the number of boxes dropped per source class name.

    ``src=None`` (no label file: an image without objects) gives no boxes. For ``yolo``,
    ``source_classes`` names the ids used in the file.
    """
    if src is None:
        return np.zeros((0, 5)), {}
    if fmt == "voc":
        boxes, dropped = voc_to_yolo(src, classes)
    elif fmt == "yolo":
        if source_classes is None:
            raise DataError(f"{src}: YOLO labels need the names of their class ids (source_classes)")
        raw = read_yolo(src)
        unknown = sorted({int(c) for c in raw[:, 0]} - set(range(len(source_classes))))
        if unknown:
            raise DataError(f"{src}: class ids {unknown} beyond source_classes {source_classes}")
        mapping = class_mapping(source_classes, classes)
        boxes = remap_classes(raw, mapping)
        dropped = {}
        for c in raw[:, 0].astype(int):
            if int(c) not in mapping:
                dropped[source_classes[c]] = dropped.get(source_classes[c], 0) + 1
    else:
        raise DataError(f"{src}: unknown label format {fmt!r} (known: {', '.join(FORMATS)})")
    return clip_boxes(boxes), dropped
