"""The YOLO dataset of one dataset × method: the train/val split, the method's images linked, the labels converted.

Every method of a dataset gets the same ids in each split and the same labels (the dataset's, converted
to YOLO text); only the images differ. The folder is scratch, rebuilt by every run.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from tqdm import tqdm

from occo.config import DetectDataset
from occo.data.io import DataError, atomic_dir
from occo.data.pairs import find_pairs, index_images
from occo.downstream.labels import convert_label, read_class_names, write_yolo
from occo.pipeline.inputs import held_out
from occo.pipeline.sources import method_images

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuiltDataset:
    """A YOLO dataset written for one dataset × method."""

    data_yaml: Path
    n_train: int
    n_val: int
    val_classes: frozenset[int]  # class ids with at least one box in the val labels


def split_ids(ids: list[str], val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Partition ``ids`` into (train, val), ``round(len·val_fraction)`` (at least 1) val ids drawn by a
    seeded permutation; the same for every method. Both lists sorted."""
    ids = sorted(ids)
    n_val = held_out(len(ids), val_fraction)
    order = np.random.default_rng(seed).permutation(len(ids))
    val = {ids[i] for i in order[:n_val]}
    return [i for i in ids if i not in val], sorted(val)


def dataset_splits(root: Path, dataset: str, spec: DetectDataset, seed: int) -> dict[str, tuple[str, list[str]]]:
    """``{"train": (raw split, ids), "val": (raw split, ids)}`` from the raw pairs of ``dataset``; one raw
    split is divided by :func:`split_ids` when train and val name the same one."""

    def ids_of(split: str) -> list[str]:
        folder = root / "data/raw" / dataset / split
        return [p.id for p in find_pairs(ir=folder / "ir", vi=folder / "vi")]

    if spec.train == spec.val:
        train, val = split_ids(ids_of(spec.train), spec.val_fraction or 0.0, seed)
        return {"train": (spec.train, train), "val": (spec.val, val)}
    return {"train": (spec.train, ids_of(spec.train)), "val": (spec.val, ids_of(spec.val))}


def _label_file(folder: Path, id_: str, fmt: str) -> Path | None:
    path = folder / f"{id_}.{'xml' if fmt == 'voc' else 'txt'}"
    return path if path.is_file() else None


def _check_class_names(labels_root: Path, folder: Path, dataset: str, spec: DetectDataset) -> None:
    """The nearest ``classes.txt`` from ``folder`` up to ``labels_root`` must agree with source_classes."""
    for d in (folder, *folder.parents):
        candidate = d / "classes.txt"
        if candidate.is_file():
            names = read_class_names(candidate)
            if [n.lower() for n in names] != [n.lower() for n in spec.source_classes or []]:
                raise DataError(
                    f"{candidate} lists classes {names}, but params detect.datasets.{dataset}.source_classes "
                    f"is {spec.source_classes}"
                )
            return
        if d == labels_root:
            return


def _link(src: Path, dst: Path) -> None:
    """``dst`` pointing at ``src`` (a symlink; a copy where links are not allowed)."""
    try:
        dst.symlink_to(src.resolve())
    except OSError:
        shutil.copy2(src, dst)


def _label_folder(root: Path, dataset: str, spec: DetectDataset, split: str) -> Path:
    """The label folder of ``split``, its ``classes.txt`` checked for YOLO labels; DataError when absent."""
    labels_root = root / "data/raw" / dataset / split / "labels"
    labels = labels_root / spec.labels
    if not labels.is_dir():
        raise DataError(
            f"label folder {labels} not found (params detect.datasets.{dataset}.labels; "
            "label sources: docs/downstream.md)"
        )
    if spec.format == "yolo":
        _check_class_names(labels_root, labels, dataset, spec)
    return labels


def _write_part(
    root: Path, dataset: str, spec: DetectDataset, method: str, split: str, ids: list[str], out: Path, part: str
) -> tuple[dict[str, int], set[int]]:
    """Link ``method``'s images of ``ids`` (of raw ``split``) into ``out/images/<part>`` and write their YOLO
    labels to ``out/labels/<part>``; returns the boxes left out per class name and the class ids written."""
    images = index_images(method_images(root, method, dataset, split))
    labels = _label_folder(root, dataset, spec, split)
    (out / "images" / part).mkdir(parents=True)
    dropped: dict[str, int] = {}
    classes: set[int] = set()
    unlabelled = 0
    for id_ in tqdm(ids, desc=f"{dataset}/{method} {part}", unit="img", leave=False):
        if id_ not in images:
            where = method_images(root, method, dataset, split)
            raise DataError(f"{where} has no image {id_} (pair {id_} of data/raw/{dataset}/{split})")
        _link(images[id_], out / "images" / part / f"{id_}{images[id_].suffix}")
        src = _label_file(labels, id_, spec.format)
        unlabelled += src is None
        boxes, lost = convert_label(src, spec.format, spec.source_classes, spec.classes)
        for name, n in lost.items():
            dropped[name] = dropped.get(name, 0) + n
        classes.update(int(c) for c in boxes[:, 0])
        write_yolo(out / "labels" / part / f"{id_}.txt", boxes)
    if unlabelled:
        log.info(
            "%s/%s: %d of %d images have no label file in %s (no objects)", dataset, split, unlabelled, len(ids), labels
        )
    return dropped, classes


def build_dataset(root: Path, dataset: str, spec: DetectDataset, method: str, out: Path, *, seed: int) -> BuiltDataset:
    """Write the YOLO dataset of ``method`` on ``dataset`` (read as ``spec`` says) to ``out`` (replaced atomically).

    Layout: ``images/{train,val}/<id>.<ext>`` (links to the method's images), ``labels/{train,val}/
    <id>.txt`` and ``data.yaml`` (absolute ``path``; names from ``spec.classes``). The labels are the
    dataset's, the same for every method. DataError naming the file for a missing method image or a
    bad label.
    """
    splits = dataset_splits(root, dataset, spec, seed)
    dropped: dict[str, int] = {}
    val_classes: set[int] = set()
    with atomic_dir(out) as tmp:
        for part, (split, ids) in splits.items():
            lost, classes = _write_part(root, dataset, spec, method, split, ids, tmp, part)
            for name, n in lost.items():
                dropped[name] = dropped.get(name, 0) + n
            if part == "val":
                val_classes = classes
        data = {
            "path": str(out.resolve()),
            "train": "images/train",
            "val": "images/val",
            "names": dict(enumerate(spec.classes)),
        }
        (tmp / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    if dropped:
        log.info("%s: boxes of classes outside %s left out: %s", dataset, spec.classes, dropped)
    return BuiltDataset(out / "data.yaml", len(splits["train"][1]), len(splits["val"][1]), frozenset(val_classes))
