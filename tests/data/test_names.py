"""occo.data.names.check_name, and every entry point that turns a dataset, split or method name into a path."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from occo.data import DataError, check_name

REPO = Path(__file__).resolve().parents[2]
BAD = ["../masks", "..", ".", "a/b", "a\\b", "", " ", "x\0y", None, 3]


@pytest.mark.parametrize("good", ["MSRS", "test", "OCCO-public", "M3FD_Detection", "a.b", "..a"])
def test_one_component_is_accepted(good):
    assert check_name(good, "x") == good


@pytest.mark.parametrize("bad", BAD)
def test_anything_else_is_refused(bad):
    with pytest.raises(DataError, match=r"^segment\.dataset must be one folder name .*, got "):
        check_name(bad, "segment.dataset")


def _stage(name: str):
    spec = importlib.util.spec_from_file_location(f"occo_test_names_{name}", REPO / "stages" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _evaluate(root: Path) -> None:
    (root / "data/raw/INDEX.json").write_text(json.dumps({"../masks": {"test": 1}}))
    _stage("evaluate").run_reference({"baselines": ["mean"], "variant": "matlab", "device": "cpu", "batch_size": 1}, root)


def _masks(root: Path) -> None:
    (root / "data/raw/INDEX.json").write_text(json.dumps({"TNO": {"test": 1}}))
    params = {"datasets": {"TNO": [".."]}, "device": "cpu", "precision": "fp32", "batch_size": 1}
    _stage("masks").run(params, root)


def _detect(root: Path) -> None:
    from occo.downstream.detect import run_detect

    run_detect({"run": [], "methods": ["occo", "../masks"], "datasets": {}}, root)


def _detect_split(root: Path) -> None:
    from occo.downstream.detect import DatasetSpec

    DatasetSpec.from_params("MSRS", {"train": "../masks", "val": "test", "labels": "det", "format": "yolo",
                                     "classes": ["person"], "paper_classes": ["person"], "source_classes": ["person"]})


def _segment(root: Path) -> None:
    from occo.downstream.segment import run_segment

    run_segment({"dataset": "MSRS", "train_split": "train", "test_split": "test", "methods": ["../masks"]}, root)


@pytest.mark.parametrize(
    ("entry", "where"),
    [(_evaluate, "dataset of data/raw/INDEX.json"), (_masks, r"masks\.datasets\.TNO entry"),
     (_detect, r"detect\.methods entry"), (_detect_split, r"detect\.datasets\.MSRS\.train"),
     (_segment, r"segment\.methods entry")],
)
def test_entry_points_refuse_names_that_leave_their_folder(tmp_path, entry, where):
    """`../masks` as a name would address data/masks (the download stage's atomic swap wiped it)."""
    (tmp_path / "data/raw").mkdir(parents=True)
    (tmp_path / "data/masks").mkdir()
    (tmp_path / "data/masks/keep.png").write_bytes(b"x")
    with pytest.raises(DataError, match=f"{where} must be one folder name"):
        entry(tmp_path)
    assert [p.name for p in (tmp_path / "data/masks").iterdir()] == ["keep.png"]
