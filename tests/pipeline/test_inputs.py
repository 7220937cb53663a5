"""occo.pipeline.inputs: what each stage reads from outside the pipeline, the manifests, the one
missing-inputs error."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import pytest
import yaml
from PIL import Image

from occo.config import validate_params
from occo.fetch import weights
from occo.pipeline import inputs
from occo.pipeline.inputs import MissingInputsError, gather, write_manifests
from support import REPO

OFFLINE_URL = "http://127.0.0.1:9/{}"  # port 9 (discard): the connection is refused at once


@pytest.fixture
def params() -> dict:
    """The repository's params with every model random-init and only the synthetic set: nothing outside needed."""
    p = yaml.safe_load((REPO / "params.yaml").read_text())
    p["download"]["datasets"] = {}
    p["masks"].update(init="tiny", datasets={})
    p["train"].update(dataset="synthetic", vgg_random_init=True)
    p["detect"].update(run=["synthetic"], pretrained=False)
    p["segment"].update(dataset="synthetic", encoder_weights=None)
    return p


@pytest.fixture
def offline(monkeypatch):
    """Registry weights point at a refused local port, so a missing file fails fast."""
    real = weights.weights_entry

    def entry(name: str) -> dict:
        e = copy.deepcopy(real(name))
        for f in e["files"] if "files" in e else [e]:
            f["url"] = OFFLINE_URL.format(f["filename"])
        return e

    monkeypatch.setattr("occo.fetch.weights.weights_entry", entry)
    monkeypatch.setenv("TORCH_HOME", "/nonexistent-torch-home")


def test_random_init_synthetic_run_needs_nothing(params, tmp_path: Path):
    manifests = gather(validate_params(params), tmp_path)
    assert set(manifests) == set(inputs.STAGES) and not any(manifests.values())
    written = write_manifests(manifests, tmp_path)
    assert sorted(p.name for p in written) == sorted(f"{s}.json" for s in inputs.STAGES)
    assert json.loads((tmp_path / "data/inputs/masks.json").read_text()) == {}


def test_every_missing_input_is_listed_at_once_with_its_param(params, tmp_path: Path, offline):
    params["download"]["datasets"] = {
        "FMB": {"source": "nowhere/FMB", "split": "train", "limit": None, "optional": True},
        "TNO": {"source": "nowhere/TNO", "split": "test", "limit": None, "optional": True},
    }
    params["train"].update(dataset="FMB", vgg_random_init=False)
    params["masks"].update(init="pretrained", datasets={"FMB": ["train"]})
    params["fuse"]["extra_checkpoints"] = {"OCCO-public": "models/missing.pt"}
    params["segment"].update(dataset="MSRS")
    with pytest.raises(MissingInputsError) as err:
        gather(validate_params(params), tmp_path)
    text = str(err.value)
    for expected in (
        "download.datasets.FMB.source",  # needed (training set) although optional
        "download.datasets.MSRS.source",  # needed by segment, not configured at all
        "fuse.extra_checkpoints.OCCO-public",
        "masks.sam_checkpoint",
        "masks.gdino_checkpoint",
        "masks.text_encoder",
        "train.vgg_weights",
        OFFLINE_URL.format("sam_vit_h_4b8939.pth"),
    ):
        assert expected in text, expected
    assert "TNO" not in text  # optional and needed by no stage: skipped, not an error
    assert text.startswith("7 input(s) missing")


def test_optional_dataset_nobody_needs_is_skipped_with_a_warning(params, tmp_path: Path, caplog):
    params["download"]["datasets"] = {"TNO": {"source": "nowhere", "split": "test", "limit": None, "optional": True}}
    with caplog.at_level(logging.WARNING):
        assert not gather(validate_params(params), tmp_path)["download"]
    assert "dataset TNO" in caplog.text


def test_registry_dataset_without_direct_download_is_missing(params, tmp_path: Path):
    params["download"]["datasets"] = {"M3FD": {"source": "registry", "split": None, "limit": None, "optional": False}}
    with pytest.raises(MissingInputsError, match="M3FD has no direct download"):
        gather(validate_params(params), tmp_path)


def test_manifest_follows_the_content_behind_a_param(params, tmp_path: Path):
    folder = tmp_path / "elsewhere" / "TNO"
    (folder / "ir").mkdir(parents=True)
    (folder / "ir" / "01.png").write_bytes(b"one")
    params["download"]["datasets"] = {"TNO": {"source": str(folder), "split": "test", "limit": None, "optional": False}}
    params["evaluate"]["external"] = {"Mine": {"TNO": "elsewhere/TNO/ir"}}
    first = gather(validate_params(params), tmp_path)
    entry = first["download"]["download.datasets.TNO.source"]
    assert entry["files"] == 1 and entry["size"] == 3
    assert first["evaluate"]["evaluate.external.Mine.TNO"]["path"] == "elsewhere/TNO/ir"
    (folder / "ir" / "01.png").write_bytes(b"two")
    second = gather(validate_params(params), tmp_path)
    assert second["download"]["download.datasets.TNO.source"]["sha256"] != entry["sha256"]
    assert gather(validate_params(params), tmp_path) == second


def test_paths_inside_pipeline_data_are_left_to_dvc_yaml(params, tmp_path: Path):
    params["masks"]["import"] = {"synthetic": {"train": "data/raw/synthetic/train/masks"}}
    assert not gather(validate_params(params), tmp_path)[
        "masks"
    ]  # a download output: absent before the pipeline runs, tracked by deps


def test_registry_copy_is_recorded_without_network_and_hashed_once(params, tmp_path: Path, offline, monkeypatch):
    params["detect"]["pretrained"] = True
    weights = tmp_path / "models/pretrained/yolov5su.pt"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"weights")
    calls = []
    real = inputs.sha256_file
    monkeypatch.setattr("occo.pipeline.inputs.sha256_file", lambda p: calls.append(p) or real(p))
    first = gather(validate_params(params), tmp_path)["detect"]["detect.weights"]
    assert first["weights"] == "yolov5su" and first["path"] == "models/pretrained/yolov5su.pt"
    gather(validate_params(params), tmp_path)
    assert len(calls) == 1  # the second run took the hash from .cache/occo/hashes.json


def test_splits_too_small_to_mean_anything_are_warned_about_once_with_the_param(params, tmp_path: Path, caplog):
    """A 3-pair FMB folder (limit 2) to train on, a detection set without its train split, the synthetic set for
    segmentation: one warning, a line per split, each naming the param that gives it more pairs."""
    for kind in ("ir", "vi"):
        (tmp_path / "FMB" / kind).mkdir(parents=True)
        (tmp_path / "MSRS/test" / kind).mkdir(parents=True)
        for i in range(3):
            Image.new("L", (8, 8)).save(tmp_path / "FMB" / kind / f"{i:05d}.png")
            Image.new("L", (8, 8)).save(tmp_path / "MSRS/test" / kind / f"{i:05d}.png")
    params["download"]["datasets"] = {
        "FMB": {"source": "FMB", "split": "train", "limit": 2, "optional": False},
        "MSRS": {"source": "MSRS", "split": None, "limit": None, "optional": False},
    }
    params["train"]["dataset"] = "FMB"
    params["detect"]["run"] = ["MSRS"]
    cfg = validate_params(params)
    problems = inputs.small_data(cfg, tmp_path)
    assert problems == [
        "train.dataset/train.split (the fusion network's training set): FMB/train has 2 pairs (the whole split: "
        "1,220), fewer than 100: set download.datasets.FMB.limit (now 2)",
        "detect.datasets.MSRS.train (detection training set): MSRS/train does not exist (the source has test); its "
        "stage skips it: set download.datasets.MSRS.source (now MSRS)",
        "detect.datasets.MSRS.val (detection test set): MSRS/test has 3 pairs (the whole split: 361), fewer than 20: "
        "set download.datasets.MSRS.source (now MSRS)",
        "segment.train_split (segmentation training set): synthetic/train has 8 pairs, fewer than 100: set "
        "download.synthetic",
        "segment.test_split (segmentation test set): synthetic/test has 4 pairs, fewer than 20: set download.synthetic",
    ]
    with caplog.at_level(logging.WARNING, logger="occo.pipeline.inputs"):
        inputs.run_inputs(cfg, tmp_path)
    assert caplog.text.count("5 split(s) too small to mean anything") == 1


def test_held_out_share_of_one_split():
    assert [inputs.held_out(n, 0.2) for n in (2, 5, 4200)] == [1, 1, 840]
