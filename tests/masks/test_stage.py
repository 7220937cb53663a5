"""The `masks` stage end to end with tiny random-init models on the synthetic set (offline, CPU)."""

from __future__ import annotations

import json
import logging

import pytest

from occo.data import load_array
from occo.fetch.weights import WeightsUnavailableError, weights_entry
from occo.train.data import find_training_pairs, load_sample


@pytest.mark.slow
def test_stage_end_to_end_resumes_and_feeds_training(tmp_path, synthetic_root, stage, params, check_outputs, caplog):
    root = synthetic_root(tmp_path)
    params.update(box_threshold=0.0, max_boxes=5, datasets={"synthetic": ["train"], "absent": ["train"]})
    with caplog.at_level(logging.WARNING):
        assert stage.run(params, root) == {"synthetic": {"train": 2}}
    assert "skipping absent/train" in caplog.text
    check_outputs(root, expect_boxes=True)
    out = root / "data/masks/synthetic/train"
    gallery_dir = root / "reports/masks/synthetic/train"
    assert [p.name for p in gallery_dir.iterdir()] == ["syn_000.png"] and not (out / "gallery").exists()
    gallery = load_array(gallery_dir / "syn_000.png")
    assert gallery.shape == (240, 3 * 320, 3)
    # at most max_boxes boxes per image, best first
    record = json.loads((out / "boxes/syn_000.json").read_text(encoding="utf-8"))
    assert len(record["ir"]["boxes"]) <= 5 and record["ir"]["scores"] == sorted(record["ir"]["scores"], reverse=True)
    # resumable: a second run writes nothing and leaves the files alone
    stamp = (out / "ir/syn_000.png").stat().st_mtime_ns
    assert stage.run(params, root) == {"synthetic": {"train": 0}}
    assert (out / "ir/syn_000.png").stat().st_mtime_ns == stamp
    # the training data loader reads them
    pairs = find_training_pairs(root, "synthetic", "train")
    assert [p.ir_mask for p in pairs] == [out / "ir/syn_000.png", out / "ir/syn_001.png"]
    assert load_sample(pairs[0]).shape == (4, 240, 320)


@pytest.mark.slow
def test_no_detections_give_empty_masks_and_changed_settings_regenerate(
    tmp_path, synthetic_root, stage, params, check_outputs
):
    root = synthetic_root(tmp_path, n_train=1)
    params.update(box_threshold=0.0, max_boxes=3)
    stage.run(params, root)
    params.update(box_threshold=1.0)  # sigmoid scores never exceed 1: nothing is detected
    assert stage.run(params, root) == {"synthetic": {"train": 1}}
    check_outputs(root, expect_boxes=False)
    settings = json.loads((root / "data/masks/synthetic/train/settings.json").read_text(encoding="utf-8"))
    assert settings["box_threshold"] == 1.0


@pytest.mark.parametrize(
    ("param", "name"),
    [
        ("sam_checkpoint", "sam_vit_h"),
        ("gdino_checkpoint", "groundingdino_swint_ogc"),
        ("text_encoder", "bert_base_uncased"),
    ],
)
def test_missing_checkpoint_names_file_url_and_param(tmp_path, synthetic_root, stage, params, param, name):
    root = synthetic_root(tmp_path, n_train=1, n_test=1)
    present = tmp_path / "present"
    present.mkdir()
    params.update(
        random_init=False, sam_checkpoint=str(present), gdino_checkpoint=str(present), text_encoder=str(present)
    )
    params[param] = "missing/weights.file"
    with pytest.raises(WeightsUnavailableError) as err:
        stage.run(params, root)
    entry = weights_entry(name)
    url = (entry["files"][0] if "files" in entry else entry)["url"]
    message = str(err.value)
    assert str(root / "missing/weights.file") in message and url in message and f"masks.{param}" in message
    assert not (root / "data/masks/synthetic/train/ir").exists()


def test_cli_reports_bad_params_in_one_line(tmp_path, synthetic_root, stage, params):
    root = synthetic_root(tmp_path, n_train=1, n_test=1)
    params.update(precision="bf16")
    (tmp_path / "params.yaml").write_text(json.dumps({"masks": params}), encoding="utf-8")
    with pytest.raises(SystemExit, match="masks.precision bf16 .*CUDA"):
        stage.main(["--params", str(tmp_path / "params.yaml"), "--root", str(root)])
