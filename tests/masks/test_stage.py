"""The `masks` stage end to end with tiny random-init models on the synthetic set (offline, CPU)."""

from __future__ import annotations

import contextlib
import json
import logging

import pytest
import torch

from occo.data import load_array
from occo.fetch.weights import WeightsUnavailableError, weights_entry
from occo.masks.detector import GroundingDinoPy
from occo.pipeline import memory
from occo.pipeline.memory import GIB, Measured
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
    record = json.loads((root / "reports/masks/pairs.json").read_text(encoding="utf-8"))
    assert record == {"synthetic": {"train": {"pairs": 2, "masks": "generated"}}}
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
        init="pretrained", sam_checkpoint=str(present), gdino_checkpoint=str(present), text_encoder=str(present)
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


def _batch_sizes(monkeypatch, fail_over: int | None = None) -> list[int]:
    """Record the pairs of every detector call (and fail, as CUDA would, with more than ``fail_over`` pairs)."""
    sizes: list[int] = []
    detect = GroundingDinoPy.detect

    def recording(self, images):
        sizes.append(len(images) // 2)
        if fail_over is not None and len(images) // 2 > fail_over:
            raise torch.OutOfMemoryError(f"CUDA out of memory (simulated: {len(images) // 2} pairs)")
        return detect(self, images)

    monkeypatch.setattr(GroundingDinoPy, "detect", recording)
    return sizes


@pytest.mark.slow
def test_a_budget_smaller_than_one_batch_sizes_the_batches(
    tmp_path, synthetic_root, stage, params, check_outputs, monkeypatch, caplog
):
    """masks.batch_size 8 with a budget that holds 3 of the pairs one pair was measured to need: the run
    measures one pair, then goes 3 at a time, and completes."""
    root = synthetic_root(tmp_path, n_train=8)
    sizes = _batch_sizes(monkeypatch)

    @contextlib.contextmanager
    def probe(device):  # one pair costs 0.3 GB, whatever the host measures
        measured = Measured()
        yield measured
        measured.bytes = int(0.3 * GIB) * sizes[-1]

    monkeypatch.setattr(memory, "measure_peak", probe)
    params.update(batch_size=8, memory_budget_gb=1.0, box_threshold=0.0, max_boxes=3)
    with caplog.at_level(logging.INFO):
        assert stage.run(params, root) == {"synthetic": {"train": 8}}
    assert sizes == [1, 3, 3, 1]
    assert "one pair needs about 0.30 GB on cpu; budget 1.00 GB: 3 pairs per batch (at most 8)" in caplog.text
    check_outputs(root, expect_boxes=True)


@pytest.mark.slow
def test_out_of_memory_halves_the_batch_and_the_run_completes(
    tmp_path, synthetic_root, stage, params, check_outputs, monkeypatch, caplog
):
    """A budget that says 8 pairs fit, a device that holds 2: after the measured pair, out of memory with the
    7 others, then with 4 of them; then 2 at a time."""
    root = synthetic_root(tmp_path, n_train=8)
    sizes = _batch_sizes(monkeypatch, fail_over=2)
    params.update(batch_size=8, memory_budget_gb=1000.0, box_threshold=0.0, max_boxes=3)
    with caplog.at_level(logging.WARNING):
        assert stage.run(params, root) == {"synthetic": {"train": 8}}
    assert sizes == [1, 7, 4, 2, 2, 2, 1]
    assert "out of memory with 7 pairs on cpu; retrying them 4 at a time" in caplog.text
    assert "out of memory with 4 pairs on cpu; retrying them 2 at a time" in caplog.text
    check_outputs(root, expect_boxes=True)
