"""The transformers Grounding DINO backend (`masks.detector: transformers`) with a tiny random-init model
(offline, CPU)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from occo.config import Masks
from occo.fetch.weights import WeightsUnavailableError, weights_entry
from occo.masks.models import DETECTORS, MODEL_INITS, detector_settings
from occo.masks.tiny import tiny_hf_grounding_dino

PROMPT = Masks().prompt


def test_folder_loads_and_batches_match_single_images(tmp_path):
    folder = tiny_hf_grounding_dino(tmp_path / "gdino", PROMPT)
    assert {"config.json", "model.safetensors", "vocab.txt"} <= {p.name for p in folder.iterdir()}
    settings = detector_settings(Masks(box_threshold=0.0, max_boxes=4))
    detector = DETECTORS["transformers"].load({"hf_model": folder}, settings, torch.device("cpu"), None)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (120, 160, 3), dtype=np.uint8) for _ in range(2)]
    batch = detector.detect(images)
    for image, found in zip(images, batch):
        alone = detector.detect([image])[0]
        np.testing.assert_allclose(found.boxes, alone.boxes, atol=1e-3)
        assert len(found.boxes) == 4 and found.phrases == alone.phrases
        assert all(p and "." not in p for p in found.phrases)
        assert (found.boxes[:, 2:] <= [160, 120]).all() and (found.boxes >= 0).all()


@pytest.mark.slow
def test_stage_end_to_end_with_transformers_detector(tmp_path, synthetic_root, stage, params, check_outputs):
    root = synthetic_root(tmp_path)
    params.update(detector="transformers", box_threshold=0.0, max_boxes=5)
    assert stage.run(params, root) == {"synthetic": {"train": 2}}
    check_outputs(root, expect_boxes=True)
    out = root / "data/masks/synthetic/train"
    record = json.loads((out / "boxes/syn_000.json").read_text(encoding="utf-8"))
    assert record["detector"] == "transformers" and len(record["vi"]["boxes"]) <= 5
    assert record["vi"]["scores"] == sorted(record["vi"]["scores"], reverse=True)
    assert json.loads((out / "settings.json").read_text(encoding="utf-8"))["detector"] == "transformers"
    assert [p.name for p in (root / "reports/masks/synthetic/train").iterdir()] == ["syn_000.png"]
    assert stage.run(params, root) == {"synthetic": {"train": 0}}  # resumable


@pytest.mark.slow
def test_no_detections_give_empty_masks(tmp_path, synthetic_root, stage, params, check_outputs):
    root = synthetic_root(tmp_path, n_train=1)
    params.update(detector="transformers", box_threshold=0.0, max_boxes=3)
    stage.run(params, root)
    params.update(box_threshold=1.0)  # sigmoid scores never exceed 1: nothing is detected
    assert stage.run(params, root) == {"synthetic": {"train": 1}}
    check_outputs(root, expect_boxes=False)


def test_missing_weights_name_file_url_and_param(tmp_path, synthetic_root, stage, params):
    root = synthetic_root(tmp_path, n_train=1, n_test=1)
    present = tmp_path / "present"
    present.mkdir()
    params.update(detector="transformers", init="pretrained", sam_checkpoint=str(present), hf_model="missing/gdino")
    with pytest.raises(WeightsUnavailableError) as err:
        stage.run(params, root)
    message = str(err.value)
    urls = [f["url"] for f in weights_entry("grounding_dino_tiny_hf")["files"]]
    assert str(root / "missing/gdino") in message and "masks.hf_model" in message
    assert all(url in message for url in urls) and "model.safetensors" in message
    assert not (root / "data/masks/synthetic/train/ir").exists()


@pytest.mark.slow
def test_random_init_builds_the_real_architectures(caplog):
    """`masks.init: random` is the configured models at their real sizes, not the tiny ones: transformers'
    grounding-dino-tiny architecture (Swin-T, bert-base, 900 queries) and SAM ViT-B (the smallest real SAM)."""
    cfg = Masks(init="random", detector="transformers", sam_model="vit_b")
    with caplog.at_level(logging.WARNING):
        detector, masker = MODEL_INITS["random"](cfg, Path("."), torch.device("cpu"), None)
    config = detector.model.config
    assert (config.num_queries, config.d_model, config.encoder_layers, config.decoder_layers) == (900, 256, 6, 6)
    assert (config.text_config.num_hidden_layers, config.text_config.hidden_size) == (12, 768)
    assert config.backbone_config.embed_dim == 96 and config.backbone_config.depths == [2, 2, 6, 2]  # Swin-T
    encoder = masker.sam.image_encoder
    assert (encoder.img_size, len(encoder.blocks), encoder.patch_embed.proj.out_channels) == (1024, 12, 768)
    assert "masks.init random" in caplog.text and "rehearsals only" in caplog.text
