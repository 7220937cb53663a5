"""stages/inputs.py: one error listing everything missing; manifests written otherwise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from stages import inputs as stage
from support import REPO


def _params(tmp_path: Path, **train) -> Path:
    p = yaml.safe_load((REPO / "params.yaml").read_text())
    p["download"]["datasets"] = {"FMB": {"source": "nowhere", "split": "train", "limit": None, "optional": True}}
    p["masks"].update(init="tiny")
    p["train"].update(vgg_random_init=True, **train)
    p["detect"].update(run=[], pretrained=False)
    p["segment"].update(dataset="synthetic", encoder_weights=None)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(p))
    return path


def test_missing_training_set_names_its_param(tmp_path: Path):
    with pytest.raises(SystemExit) as exit_:
        stage.main(["--params", str(_params(tmp_path)), "--root", str(tmp_path)])
    assert "inputs: 1 input(s) missing" in str(exit_.value)
    assert "download.datasets.FMB.source" in str(exit_.value)


def test_writes_one_manifest_per_stage(tmp_path: Path):
    stage.main(["--params", str(_params(tmp_path, dataset="synthetic")), "--root", str(tmp_path)])
    assert json.loads((tmp_path / "data/inputs/train.json").read_text()) == {}
