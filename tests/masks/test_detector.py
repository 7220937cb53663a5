"""Grounding DINO post-processing and checkpoint loading (weights_only) with the tiny model."""

from __future__ import annotations

import torch

from occo.config import Masks
from occo.masks.detector import build_grounding_dino, select_boxes
from occo.masks.models import detector_settings
from occo.masks.tiny import tiny_bert, tiny_grounding_dino_args

PROMPT = Masks().prompt


def test_select_boxes_converts_clips_suppresses_and_caps():
    boxes = torch.tensor([[0.5, 0.5, 0.2, 0.2], [0.5, 0.5, 0.2, 0.19], [0.95, 0.1, 0.3, 0.4], [0.2, 0.8, 0.1, 0.1]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    found = select_boxes(boxes, scores, ["a", "b", "c", "d"], (100, 200), detector_settings(Masks(max_boxes=2)))
    assert found.phrases == ["a", "c"]  # b overlaps a (IoU 0.95 > 0.8); d is past max_boxes
    assert found.boxes.tolist() == [[80.0, 40.0, 120.0, 60.0], [160.0, 0.0, 200.0, 30.0]]  # c clipped to the image
    assert found.to_json()["scores"] == [0.9, 0.7]


def test_checkpoint_loads_with_weights_only(tmp_path):
    args = tiny_grounding_dino_args(tiny_bert(tmp_path / "bert", PROMPT))
    torch.manual_seed(1)
    model = build_grounding_dino(args, None)
    torch.save({"model": {f"module.{k}": v for k, v in model.state_dict().items()}}, tmp_path / "gdino.pth")
    torch.manual_seed(2)
    loaded = build_grounding_dino(args, tmp_path / "gdino.pth")
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())
