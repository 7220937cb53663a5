"""Segmentation stage: IoU arithmetic, label reading, weights, the metrics schema and a CPU smoke of the trainer."""

from __future__ import annotations

import csv
import importlib.util
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import segmentation_models_pytorch as smp
import torch
import yaml
from PIL import Image
from safetensors.torch import save_file

import occo.downstream.segment.train as seg_train
from occo.config import ParamsError, Segment, as_dict, validate_params
from occo.data import DataError, make_synthetic, save_png
from occo.data.color import IMAGENET_MEAN, IMAGENET_STD
from occo.downstream.segment import CLASS_NAMES, SEGMENT_OUTPUTS, run_segment, train_method
from occo.downstream.segment.data import (
    IGNORE_INDEX,
    SegDataset,
    collate_padded,
    find_samples,
    normalise,
    read_label,
    read_rgb,
)
from occo.downstream.segment.model import Autocast, build_segmenter, encoder_weights_path
from occo.downstream.segment.scores import (
    confusion_matrix,
    evaluate,
    iou_per_class,
    mean_iou,
    metrics_record,
    segmentation_table,
)
from occo.downstream.segment.train import poly_factor, segmenter_identity
from occo.fetch.weights import WeightsUnavailableError
from occo.pipeline.memory import BoundedBatches
from occo.pipeline.resume import change_reason
from support import REPO, PicklePayload

N_CLASSES = len(CLASS_NAMES)


@pytest.fixture(autouse=True)
def _offline_single_thread(monkeypatch: pytest.MonkeyPatch):
    """Offline, and one intra-op thread: the convolutions here are tiny."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _params(**overrides) -> Segment:
    """The repo's segment params with CPU smoke overrides (tiny random-init resnet18, one epoch)."""
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))["segment"]
    params.update(
        dataset="synthetic",
        encoder="resnet18",
        encoder_weights=None,
        weights=None,
        epochs=1,
        batch_size=2,
        size=None,
        crop=None,
        num_workers=0,
        device="cpu",
    )
    params.update(overrides)
    return Segment.model_validate(params)


def _train(params: Segment, root: Path, method: str) -> dict:
    """``train_method`` on the synthetic set, writing where a call without a part writes."""
    return train_method(params, root, method, "synthetic", SEGMENT_OUTPUTS[None])


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root with a small synthetic set and a fake 'occo' fused folder (copies of the visible images)."""
    root = tmp_path_factory.mktemp("segroot")
    make_synthetic(root / "data/raw/synthetic", n_train=4, n_test=2, height=64, width=80, seed=0)
    for split in ("train", "test"):
        shutil.copytree(root / f"data/raw/synthetic/{split}/vi", root / f"data/fused/occo/synthetic/{split}")
    return root


def _fresh_root(template: Path, dest: Path) -> Path:
    shutil.copytree(template / "data", dest / "data")
    return dest


# ---------------------------------------------------------------------------------------- arithmetic


def test_iou_on_a_hand_made_label_map() -> None:
    target = torch.tensor([[0, 0, 1], [1, 2, 255]])
    pred = torch.tensor([[0, 1, 1], [1, 2, 0]])
    conf = confusion_matrix(pred, target)
    expected = torch.zeros(N_CLASSES, N_CLASSES, dtype=torch.int64)
    expected[0, 0], expected[0, 1], expected[1, 1], expected[2, 2] = 1, 1, 2, 1  # the ignored pixel is not counted
    assert torch.equal(conf, expected)
    iou = iou_per_class(conf)
    assert iou[:3].tolist() == pytest.approx([1 / 2, 2 / 3, 1.0])  # 0: TP1 FN1; 1: TP2 FP1; 2: TP1
    assert iou[3:].isnan().all()  # absent from labels and predictions: undefined
    assert mean_iou(iou) == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)


def test_iou_counts_a_predicted_but_absent_class_as_zero() -> None:
    conf = torch.zeros(N_CLASSES, N_CLASSES, dtype=torch.int64)
    conf[0, 0], conf[0, 4], conf[2, 2] = 6, 2, 4  # class 4 predicted on 2 pixels, never labelled
    iou = iou_per_class(conf)
    assert iou[0].item() == pytest.approx(6 / 8) and iou[2].item() == 1.0 and iou[4].item() == 0.0
    assert mean_iou(iou) == pytest.approx((6 / 8 + 1 + 0) / 3)


def test_confusion_matrix_matches_a_pixel_count_and_accumulates() -> None:
    rng = np.random.default_rng(0)
    target = rng.integers(0, N_CLASSES, (2, 17, 23))
    target[0, :3] = 255
    pred = rng.integers(0, N_CLASSES, (2, 17, 23))
    expected = np.zeros((N_CLASSES, N_CLASSES), np.int64)
    np.add.at(expected, (target[target != 255], pred[target != 255]), 1)
    conf = confusion_matrix(torch.from_numpy(pred[:1]), torch.from_numpy(target[:1]))
    conf += confusion_matrix(torch.from_numpy(pred[1:]), torch.from_numpy(target[1:]))
    assert np.array_equal(conf.numpy(), expected)


def test_poly_schedule() -> None:
    assert poly_factor(0, 100, 0.9) == 1.0
    assert poly_factor(50, 100, 0.9) == pytest.approx(0.5**0.9)
    assert poly_factor(100, 100, 0.9) == 0.0


def test_metrics_record_schema() -> None:
    conf = torch.zeros(N_CLASSES, N_CLASSES, dtype=torch.int64)
    conf[0, 0], conf[1, 1], conf[1, 0] = 3, 1, 1
    record = json.loads(json.dumps(metrics_record(conf, epochs=150, n_train=1083, n_test=361)))
    assert list(record) == ["iou", "miou", "epochs", "n_train", "n_test"]
    assert list(record["iou"]) == [
        "unlabelled",
        "car",
        "person",
        "bike",
        "curve",
        "car_stop",
        "guardrail",
        "color_cone",
        "bump",
    ]
    assert record["iou"]["unlabelled"] == pytest.approx(3 / 4) and record["iou"]["car"] == pytest.approx(1 / 2)
    assert all(record["iou"][c] is None for c in CLASS_NAMES[2:])
    assert record["miou"] == pytest.approx((3 / 4 + 1 / 2) / 2)
    assert (record["epochs"], record["n_train"], record["n_test"]) == (150, 1083, 361)


def test_segmentation_table_rows_are_methods_and_columns_classes() -> None:
    conf = torch.eye(N_CLASSES, dtype=torch.int64)
    good = metrics_record(conf, epochs=1, n_train=2, n_test=1)
    bad = metrics_record(conf.roll(1, dims=1), epochs=1, n_train=2, n_test=1)
    table = segmentation_table({"occo": good, "visible": bad}, title="t")
    assert "| method | unlabelled | car |" in table and table.count("| occo | **100.00** |") == 1
    assert "| visible | 0.00 |" in table


# -------------------------------------------------------------------------------------------- inputs


def test_read_label_accepts_grey_and_palette_and_refuses_the_rest(tmp_path: Path) -> None:
    ids = np.array([[0, 8], [255, 3]], np.uint8)
    Image.fromarray(ids).save(tmp_path / "grey.png")
    palette = Image.new("P", (2, 2))
    palette.putdata(ids.ravel().tolist())
    palette.putpalette([v for i in range(256) for v in (i, 255 - i, 0)])  # colours differ from the ids
    palette.save(tmp_path / "pal.png")
    assert np.array_equal(read_label(tmp_path / "grey.png"), ids)
    assert np.array_equal(read_label(tmp_path / "pal.png"), ids)
    save_png(tmp_path / "rgb.png", np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(DataError, match=r"rgb\.png.*single-channel"):
        read_label(tmp_path / "rgb.png")
    Image.fromarray(np.array([[0, 9]], np.uint8)).save(tmp_path / "nine.png")
    with pytest.raises(DataError, match=r"nine\.png holds class id 9"):
        read_label(tmp_path / "nine.png")


def test_infrared_grey_is_replicated_and_normalised(tmp_path: Path) -> None:
    save_png(tmp_path / "ir.png", np.full((3, 4), 255, np.uint8))
    rgb = read_rgb(tmp_path / "ir.png")
    assert rgb.shape == (3, 4, 3)
    x = normalise(rgb)
    expected = [(1 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)]
    assert x[:, 0, 0].tolist() == pytest.approx(expected)


def test_missing_method_image_and_size_mismatch_name_the_files(synthetic_root: Path, tmp_path: Path) -> None:
    root = _fresh_root(synthetic_root, tmp_path / "r")
    (root / "data/fused/occo/synthetic/test/syn_005.png").unlink()
    with pytest.raises(DataError, match=r"data/fused/occo/synthetic/test has no image .*syn_005"):
        find_samples(root, "occo", "synthetic", "test")
    save_png(root / "data/fused/occo/synthetic/test/syn_005.png", np.zeros((10, 10, 3), np.uint8))
    data = SegDataset(find_samples(root, "occo", "synthetic", "test"), train=False)
    with pytest.raises(DataError, match=r"syn_005\.png is 10x10 but label .*syn_005\.png is 80x64"):
        data[1]


def test_training_items_are_cropped_flipped_reproducibly_and_batches_padded(synthetic_root: Path) -> None:
    samples = find_samples(synthetic_root, "visible", "synthetic", "train")
    data = SegDataset(samples, train=True, crop=(40, 100), seed=3)
    a, b = data[(2, 1)], data[(2, 1)]
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert a[0].shape == (3, 40, 100) and a[1].shape == (40, 100)
    assert (a[1][:, 80:] == IGNORE_INDEX).all() or (a[1][:, :20] == IGNORE_INDEX).all()  # padded width
    small = (torch.zeros(3, 20, 30), torch.zeros(20, 30, dtype=torch.int64))
    images, labels = collate_padded([data.load(0), small])
    assert images.shape == (2, 3, 64, 80) and labels.shape == (2, 64, 80)
    assert (labels[1, 20:] == IGNORE_INDEX).all() and (labels[1, :20, :30] == 0).all()


# ------------------------------------------------------------------------------------------- weights


def test_same_seed_same_initial_weights() -> None:
    a = build_segmenter("resnet18", seed=0, weights=None).state_dict()
    b = build_segmenter("resnet18", seed=0, weights=None).state_dict()
    c = build_segmenter("resnet18", seed=1, weights=None).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_encoder_weights_load_from_safetensors_and_torchvision_pth(tmp_path: Path) -> None:
    source = smp.DeepLabV3Plus("resnet18", encoder_weights=None, classes=3).encoder
    state = {k: v.clone() for k, v in source.state_dict().items()}
    save_file(state, str(tmp_path / "enc.safetensors"))
    torch.save({**state, "fc.weight": torch.zeros(1000, 512), "fc.bias": torch.zeros(1000)}, tmp_path / "tv.pth")
    for path in (tmp_path / "enc.safetensors", tmp_path / "tv.pth"):
        model = build_segmenter("resnet18", seed=5, weights=path)
        loaded = model.encoder.state_dict()
        assert all(torch.equal(loaded[k], state[k]) for k in state)
    with pytest.raises(DataError, match=r"cannot load encoder weights .*enc\.safetensors"):
        build_segmenter("resnet34", seed=0, weights=tmp_path / "enc.safetensors")


def test_pickled_encoder_weights_are_refused_in_one_line_and_never_run(tmp_path: Path) -> None:
    """A .pth carrying pickled code used to be refused by weights_only with an UnpicklingError traceback."""
    evil = tmp_path / "resnet18.pth"
    torch.save({"conv1.weight": PicklePayload(tmp_path / "executed")}, evil)
    with pytest.raises(DataError) as err:
        build_segmenter("resnet18", seed=0, weights=evil)
    message = str(err.value)
    assert message.startswith(f"{evil} holds pickled Python objects (io.open)") and "segment.weights" in message
    assert "\n" not in message and not (tmp_path / "executed").exists()


def test_missing_weights_name_file_url_and_param(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    local = tmp_path / "nowhere/resnet50.safetensors"
    url = r"https://huggingface\.co/smp-hub/resnet50\.imagenet/resolve/00cb74e3\w+/model\.safetensors"
    with pytest.raises(WeightsUnavailableError, match=rf"nowhere/resnet50\.safetensors.*{url}.*segment\.weights"):
        encoder_weights_path(_params(encoder="resnet50", encoder_weights="imagenet", weights=str(local)), tmp_path)

    def offline(url: str, dest: Path, *, hint: str, **_) -> Path:  # occo.fetch.download.fetch without a network
        raise DataError(f"cannot download {url}: network unreachable; {hint}")

    monkeypatch.setattr("occo.fetch.weights.fetch", offline)
    with pytest.raises(
        WeightsUnavailableError,
        match=rf"models/pretrained/smp-hub_resnet50\.imagenet\.safetensors.*{url}.*segment\.weights",
    ):
        encoder_weights_path(_params(encoder="resnet50", encoder_weights="imagenet"), tmp_path)


def test_bad_weight_params_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match=r"segment\.encoder = 'vgg11'"):
        validate_params({"segment": {"encoder": "vgg11"}})
    with pytest.raises(ParamsError, match=r"segment = .*weights is set but encoder_weights is null"):
        validate_params({"segment": {"encoder_weights": None, "weights": "x.pth"}})
    assert encoder_weights_path(_params(), tmp_path) is None


# --------------------------------------------------------------------------------------- end to end


def _load_stage():
    spec = importlib.util.spec_from_file_location("occo_test_stage_segment", REPO / "stages" / "segment.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_stage_trains_every_method_and_writes_metrics(synthetic_root: Path, tmp_path: Path) -> None:
    root = _fresh_root(synthetic_root, tmp_path / "r")
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump({"segment": as_dict(_params())}), encoding="utf-8")
    stage = _load_stage()
    for part in ("reference", "ours"):
        stage.main(["--params", str(params_file), "--root", str(root), "--part", part])
    assert sorted(p.name for p in (root / "reference/segment/synthetic").iterdir()) == ["infrared.json", "visible.json"]
    assert sorted(p.name for p in (root / "models/segment/synthetic").iterdir()) == ["occo"]
    records = {}
    for method in ("occo", "visible", "infrared"):
        record = json.loads((root / f"metrics/segment/synthetic/{method}.json").read_text(encoding="utf-8"))
        assert set(record) == {"iou", "miou", "epochs", "n_train", "n_test"}
        assert list(record["iou"]) == list(CLASS_NAMES)
        assert (record["epochs"], record["n_train"], record["n_test"]) == (1, 4, 2)
        assert 0.0 <= record["miou"] <= 1.0 and record["iou"]["unlabelled"] is not None
        assert all(v is None or 0.0 <= v <= 1.0 for v in record["iou"].values())
        suffix = "" if method == "occo" else "_reference"
        assert (root / f"models/segment{suffix}/synthetic/{method}/last.pt").is_file()
        assert (root / f"models/segment{suffix}/synthetic/{method}/model.pt").is_file()
        assert (root / f"dvclive/segment{suffix}/synthetic/{method}/metrics.json").is_file()
        records[method] = record
    # 'occo' here is a copy of the visible images: same start, same seed, same data -> same numbers.
    assert records["occo"] == records["visible"]
    table = (root / "reports/segment/synthetic.md").read_text(encoding="utf-8")
    assert all(f"| {m} |" in table for m in records)


class _Interrupted(Exception):
    pass


@pytest.mark.slow
def test_resume_after_interruption_matches_an_uninterrupted_run(
    synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    params = _params(epochs=2, methods=["visible"], size=[32, 48])
    straight = _fresh_root(synthetic_root, tmp_path / "straight")
    expected = _train(params, straight, "visible")

    root = _fresh_root(synthetic_root, tmp_path / "resumed")
    real_save = seg_train.save_state

    def save_then_crash(path: Path, state: dict) -> None:
        real_save(path, state)
        raise _Interrupted

    monkeypatch.setattr(seg_train, "save_state", save_then_crash)
    with pytest.raises(_Interrupted):
        _train(params, root, "visible")
    assert torch.load(root / "models/segment/synthetic/visible/last.pt", weights_only=True)["epoch"] == 1
    monkeypatch.setattr(seg_train, "save_state", real_save)
    with caplog.at_level(logging.INFO, logger="occo.downstream.segment"):
        resumed = _train(params, root, "visible")
    assert "resuming from" in caplog.text
    assert resumed == expected
    a = torch.load(straight / "models/segment/synthetic/visible/model.pt", weights_only=True)["model"]
    b = torch.load(root / "models/segment/synthetic/visible/model.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="occo.downstream.segment"):
        again = _train(params, root, "visible")  # finished: tested, not retrained
    assert "testing only" in caplog.text and again == expected

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="occo.downstream.segment"):
        _train(params.model_copy(update={"lr": 0.02}), root, "visible")  # other params: from scratch
    assert "params changed (images, labels unchanged)" in caplog.text and "training from scratch" in caplog.text
    assert "resuming from" not in caplog.text


def _epochs_logged(root: Path, method: str) -> list[int]:
    with open(root / f"dvclive/segment/synthetic/{method}/plots/metrics/train/loss.tsv", newline="") as f:
        return [int(row["step"]) for row in csv.DictReader(f, delimiter="\t")]


@pytest.mark.slow
def test_finished_segmenter_is_retrained_when_its_images_change(
    synthetic_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A finished segmenter whose training images were fused again (another experiment, e.g. omega6=100) is
    trained again on them, not only tested."""
    params = _params(methods=["occo"], size=[32, 48])
    root = _fresh_root(synthetic_root, tmp_path / "r")
    _train(params, root, "occo")
    for path in (root / "data/fused/occo/synthetic/train").iterdir():  # a new fusion of the train split
        save_png(path, np.ascontiguousarray(read_rgb(path)[:, ::-1]))
    with caplog.at_level(logging.INFO, logger="occo.downstream.segment"):
        record = _train(params, root, "occo")
    assert "images changed (params, labels unchanged)" in caplog.text and "training from scratch" in caplog.text
    assert "testing only" not in caplog.text and _epochs_logged(root, "occo") == [1]
    fresh = _fresh_root(root, tmp_path / "fresh")  # a first run on the new images (data/ only)
    assert _train(params, fresh, "occo") == record


@pytest.mark.slow
def test_resume_logs_each_epoch_once(synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed after logging epoch 2 but before its checkpoint: the resumed run logs epoch 2 once."""
    params = _params(epochs=2, methods=["visible"], size=[32, 48])
    root = _fresh_root(synthetic_root, tmp_path / "r")
    real_save, calls = seg_train.save_state, []

    def crash_on_second(path: Path, state: dict) -> None:
        calls.append(path)
        if len(calls) == 2:
            raise _Interrupted
        real_save(path, state)

    monkeypatch.setattr(seg_train, "save_state", crash_on_second)
    with pytest.raises(_Interrupted):
        _train(params, root, "visible")
    assert _epochs_logged(root, "visible") == [1, 2]
    monkeypatch.setattr(seg_train, "save_state", real_save)
    _train(params, root, "visible")
    assert _epochs_logged(root, "visible") == [1, 2]


def test_a_lowered_epoch_target_never_resumes_a_later_checkpoint() -> None:
    """segment.epochs is part of a segmenter's identity (its poly schedule spans every epoch), so a checkpoint
    of a longer run is never resumed by a shorter one: it trains from scratch."""
    longer, shorter = (segmenter_identity(_params(epochs=n), "visible", []) for n in (3, 2))
    assert change_reason(longer, shorter) == "params changed (images, labels unchanged)"


def test_unreadable_last_pt_is_one_line_and_kept(synthetic_root: Path, tmp_path: Path) -> None:
    root = _fresh_root(synthetic_root, tmp_path / "r")
    last = root / "models/segment/synthetic/visible/last.pt"
    last.parent.mkdir(parents=True)
    last.write_bytes(b"")
    stale = last.with_name(".last.pt.tmp-0123456789ab")
    stale.write_bytes(b"half")
    with pytest.raises(DataError, match=r"last\.pt is empty.*delete it to train"):
        _train(_params(), root, "visible")
    assert last.read_bytes() == b"" and not stale.exists()


@pytest.mark.slow
def test_one_method_alone_gives_the_same_outputs(synthetic_root: Path, tmp_path: Path) -> None:
    params = _params(size=[32, 48])
    both = _fresh_root(synthetic_root, tmp_path / "both")
    together = run_segment(params, both)
    alone = _fresh_root(synthetic_root, tmp_path / "alone")
    assert run_segment(params, alone, dataset="synthetic", method="infrared", write_tables=False) == {
        "infrared": together["infrared"]
    }
    for rel in ("metrics/segment/synthetic/infrared.json", "models/segment/synthetic/infrared/model.pt"):
        assert (alone / rel).read_bytes() == (both / rel).read_bytes(), rel
    assert sorted(p.name for p in (alone / "models/segment/synthetic").iterdir()) == ["infrared"]
    assert (both / "reports/segment/synthetic.md").is_file() and not any((alone / "reports/segment").iterdir())
    with pytest.raises(DataError, match=r"'MSRS' is not in params segment\.dataset"):
        run_segment(params, alone, dataset="MSRS")
    with pytest.raises(DataError, match=r"'sar' is not in params segment\.methods"):
        run_segment(params, alone, method="sar")


def test_dataset_without_segmentation_labels_is_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "data/raw/MSRS/test/vi").mkdir(parents=True)
    with caplog.at_level(logging.WARNING, logger="occo.downstream.segment"):
        assert run_segment(_params(dataset="MSRS"), tmp_path) == {}
    assert "skipping segmentation" in caplog.text and "MSRS/train/labels/seg" in caplog.text
    for out in ("metrics/segment", "models/segment", "dvclive/segment"):  # DVC needs its outs
        assert (tmp_path / out).is_dir() and not any((tmp_path / out).iterdir())
    skipped = json.loads((tmp_path / "reports/segment/skipped.json").read_text(encoding="utf-8"))
    assert skipped == {"MSRS": "data/raw/MSRS has no train split (segment.train_split)"}  # the report says why
    (tmp_path / "data/raw/MSRS/train/vi").mkdir(parents=True)
    run_segment(_params(dataset="MSRS"), tmp_path)
    skipped = json.loads((tmp_path / "reports/segment/skipped.json").read_text(encoding="utf-8"))
    assert skipped == {
        "MSRS": "no segmentation labels in its train split (segment.train_split): data/raw/MSRS/train/labels/seg "
        "does not exist"
    }


def test_test_batches_fit_the_memory_budget_and_give_the_same_confusion_matrix():
    """A loaded batch of 4 images goes through the network in slices (halved on out-of-memory): the confusion
    matrix is the one of whole batches."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, len(CLASS_NAMES), 3, padding=1).eval()
    seen: list[int] = []

    def model(x: torch.Tensor) -> torch.Tensor:
        seen.append(len(x))
        if len(x) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return conv(x)

    images = torch.rand(4, 3, 16, 16)
    labels = torch.randint(0, len(CLASS_NAMES), (4, 16, 16))
    loader = [(images, labels), (images[:3], labels[:3])]
    cpu, precision = torch.device("cpu"), Autocast.choose(False, torch.device("cpu"))
    whole = evaluate(conv, loader, cpu, precision, desc="whole")
    bounded = BoundedBatches(4, 1 << 50, cpu, what="test", unit="image")
    model.eval = lambda: None  # the stand-in network has no modes
    assert torch.equal(evaluate(model, loader, cpu, precision, desc="sliced", batches=bounded), whole)
    assert seen == [1, 3, 2, 1, 2, 1] and bounded.size == 2  # 1 measured, 3 out of memory, then 2 at a time
