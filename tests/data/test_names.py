"""occo.data.names.check_name, and every entry point that turns a dataset, split or method name into a path."""

from __future__ import annotations

import json

import pytest

from occo.config import Evaluate, Params, ParamsError, as_dict, validate_params
from occo.data import DataError, check_name
from occo.metrics.scoring import run_evaluate_reference

BAD = ["../masks", "..", ".", "a/b", "a\\b", "", " ", "x\0y", None, 3]


@pytest.mark.parametrize("good", ["MSRS", "test", "OCCO-public", "M3FD_Detection", "a.b", "..a"])
def test_one_component_is_accepted(good):
    assert check_name(good, "x") == good


@pytest.mark.parametrize("bad", BAD)
def test_anything_else_is_refused(bad):
    with pytest.raises(DataError, match=r"segment\.dataset .*one folder name"):
        check_name(bad, "segment.dataset")


def test_names_in_data_files_are_checked_before_a_path_is_built(tmp_path):
    """`../masks` as a dataset of data/raw/INDEX.json would address data/masks."""
    (tmp_path / "data/raw").mkdir(parents=True)
    (tmp_path / "data/masks").mkdir()
    (tmp_path / "data/masks/keep.png").write_bytes(b"x")
    (tmp_path / "data/raw/INDEX.json").write_text(json.dumps({"../masks": {"test": 1}}))
    with pytest.raises(DataError, match="dataset of data/raw/INDEX.json"):
        run_evaluate_reference(Evaluate(baselines=["mean"], device="cpu", batch_size=1), tmp_path)
    assert [p.name for p in (tmp_path / "data/masks").iterdir()] == ["keep.png"]


@pytest.mark.parametrize(
    "key",
    [
        "masks.datasets",
        "detect.methods",
        "detect.run",
        "segment.methods",
        "segment.dataset",
        "segment.train_split",
        "train.dataset",
        "train.split",
        "fuse.extra_checkpoints",
        "evaluate.splits",
        "download.datasets",
        "detect.datasets.MSRS.train",
        "report.ours",
    ],
)
def test_every_param_that_becomes_a_path_is_one_folder_name(key):
    """Each such param is a FolderName in the schema: refused before any stage starts."""
    values = {
        "masks.datasets": {"TNO": [".."]},
        "detect.methods": ["occo", "../masks"],
        "detect.run": ["../x"],
        "segment.methods": ["../masks"],
        "fuse.extra_checkpoints": {"../raw": "m.pt"},
        "evaluate.splits": {"TNO": "../x"},
        "download.datasets": {"../x": {"source": "x"}},
        "report.ours": ["../x"],
    }
    raw = as_dict(Params())
    *parents, last = key.split(".")
    node = raw
    for part in parents:
        node = node[part]
    node[last] = values.get(key, "../masks")
    with pytest.raises(ParamsError, match="one folder name"):
        validate_params(raw)
