"""stages/weights.py: the index it writes, and the one-line error offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from stages import weights as stage


def test_nothing_requested_writes_empty_index(tmp_path: Path):
    assert stage.run({"fetch": []}, tmp_path) == {}
    assert json.loads((tmp_path / "models/pretrained/INDEX.json").read_text()) == {}


def test_present_copy_is_indexed_without_network(tmp_path: Path, monkeypatch):
    target = tmp_path / "models/pretrained/yolov5su.pt"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"w")
    monkeypatch.setattr("occo.weights.weights_entry", lambda name: {"url": "http://127.0.0.1:9/y.pt", "filename": "yolov5su.pt", "sha256": None})
    assert stage.run({"fetch": ["yolov5su"]}, tmp_path) == {"yolov5su": "yolov5su.pt"}


def test_offline_failure_is_one_line_naming_url(tmp_path: Path, monkeypatch):
    monkeypatch.setattr("occo.weights.weights_entry", lambda name: {"url": "http://127.0.0.1:9/s.pth", "filename": "s.pth", "sha256": None})
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"weights": {"fetch": ["sam_vit_b"]}}))
    with pytest.raises(SystemExit) as exit_:
        stage.main(["--params", str(params), "--root", str(tmp_path)])
    assert "http://127.0.0.1:9/s.pth" in str(exit_.value) and "\n" not in str(exit_.value)
