"""Detection stage: dataset building, paper arithmetic and metrics schema, weights errors, CPU smoke.

The stage itself runs once per module (:func:`stage`: `ours` before `reference`, `reference`, `ours`), and
the tests of its behaviours read that run or continue from copies of it, so each YOLO training setup is
trained once.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import yaml
from pydantic import ValidationError

from occo.config import Detect, DetectDataset, ParamsError, load_params, validate_params
from occo.data import make_synthetic, sha256_file
from occo.data.io import DataError
from occo.downstream.detect import run_detect
from occo.downstream.detect.data import build_dataset, split_ids
from occo.downstream.detect.scores import detection_metrics, paper_mean
from occo.downstream.detect.train import (
    prepare_ultralytics,
    read_run_state,
    resolve_model_weights,
    train_config,
    train_detector,
)
from occo.downstream.detect.weights import coco_network
from occo.fetch.weights import WeightsUnavailableError
from support import REPO, SHARED, PicklePayload

SYNTHETIC_ENTRY = {
    "train": "train",
    "val": "test",
    "labels": "det",
    "format": "yolo",
    "source_classes": ["person", "car"],
    "classes": ["person", "car"],
    "paper_classes": ["person", "car"],
}
SYNTHETIC = DetectDataset.model_validate(SYNTHETIC_ENTRY)
MSRS_LIKE = DetectDataset(
    train="train",
    val="test",
    labels="det/fusion",
    format="yolo",
    classes=["person", "bicycle", "car"],
    paper_classes=["person", "car"],
    source_classes=["person", "bicycle", "car"],
)
SMOKE_ENTRY = {
    "model": "yolov5n",
    "weights": None,
    "pretrained": False,
    "epochs": 1,
    "imgsz": 64,
    "batch": 4,
    "nbs": 4,
    "warmup_epochs": 0,
    "workers": 0,
    "device": "cpu",
    "amp": "bf16",
    "seed": 0,
    "methods": ["occo", "visible", "infrared"],
    "run": ["synthetic"],
    "datasets": {"synthetic": SYNTHETIC_ENTRY},
}


def smoke(**changes: Any) -> Detect:
    """The smoke section (yolov5n from random weights, one epoch at 64 px, CPU) with ``changes``."""
    return Detect.model_validate({**SMOKE_ENTRY, **changes})


def check_schema(metrics: dict, classes: list[str]) -> None:
    """The metrics JSON schema: exactly these keys, numbers only, per-class entries plus "all"."""
    assert set(metrics) == {"ap50", "ap50_95", "epochs", "imgsz", "n_train", "n_val"}
    for key in ("ap50", "ap50_95"):
        assert set(metrics[key]) <= {*classes, "all"} and "all" in metrics[key]
        assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in metrics[key].values())
    assert set(metrics["ap50"]) == set(metrics["ap50_95"])
    assert all(
        isinstance(metrics[k], int) and not isinstance(metrics[k], bool)
        for k in ("epochs", "imgsz", "n_train", "n_val")
    )


@pytest.fixture(scope="module")
def yolo_config(tmp_path_factory: pytest.TempPathFactory):
    """ultralytics settings and font in a scratch folder for the whole module (read once, at import)."""
    saved = {k: os.environ.get(k) for k in ("YOLO_CONFIG_DIR", "YOLO_OFFLINE")}
    os.environ["YOLO_CONFIG_DIR"] = str(tmp_path_factory.mktemp("yolo_config"))
    os.environ["YOLO_OFFLINE"] = "1"
    yield Path(os.environ["YOLO_CONFIG_DIR"])
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository root with the synthetic set and a fake OCCO fusion (copies of the visible images)."""
    root = tmp_path_factory.mktemp("root")
    make_synthetic(root / "data/raw/synthetic")
    for split in ("train", "test"):
        shutil.copytree(root / f"data/raw/synthetic/{split}/vi", root / f"data/fused/occo/synthetic/{split}")
    return root


def fake_box(index: list[int], ap50: list[float], ap: list[float]) -> SimpleNamespace:
    """The parts of ultralytics' ``metrics.box`` the metrics are read from; ``maps`` holds fill-ins."""
    return SimpleNamespace(ap_class_index=np.array(index), ap50=np.array(ap50), ap=np.array(ap), maps=np.full(3, 0.123))


def _load_stage():
    spec = importlib.util.spec_from_file_location("occo_test_stage_detect", REPO / "stages/detect.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def detect_log() -> Iterator[list[str]]:
    """The messages logged under ``occo.downstream.detect`` (INFO and up) while the block runs."""
    logger = logging.getLogger("occo.downstream.detect")
    messages: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: messages.append(record.getMessage())
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


# ---------------------------------------------------------------------------------------- arithmetic


def test_paper_arithmetic_and_schema() -> None:
    box = fake_box([0, 1, 2], [0.8, 0.2, 0.6], [0.5, 0.1, 0.3])
    out = detection_metrics(box, MSRS_LIKE, frozenset({0, 1, 2}), epochs=40, imgsz=640, n_train=1083, n_val=361)
    check_schema(out, MSRS_LIKE.classes)
    assert out["ap50"] == pytest.approx({"person": 0.8, "bicycle": 0.2, "car": 0.6, "all": 0.7})
    assert out["ap50_95"] == pytest.approx({"person": 0.5, "bicycle": 0.1, "car": 0.3, "all": 0.4})
    assert (out["epochs"], out["imgsz"], out["n_train"], out["n_val"]) == (40, 640, 1083, 361)
    json.loads(json.dumps(out))


def test_classes_absent_from_val_are_not_reported() -> None:
    box = fake_box([0, 2], [0.9, 0.5], [0.6, 0.2])
    out = detection_metrics(box, MSRS_LIKE, frozenset({0, 2}), epochs=1, imgsz=64, n_train=8, n_val=4)
    assert set(out["ap50"]) == {"person", "car", "all"}
    only_person = detection_metrics(box, MSRS_LIKE, frozenset({0}), epochs=1, imgsz=64, n_train=8, n_val=4)
    assert only_person["ap50"] == pytest.approx({"person": 0.9, "all": 0.9})


def test_paper_mean_needs_a_present_class() -> None:
    assert paper_mean({"a": 0.2, "b": 0.4, "c": 1.0}, ["a", "b", "z"]) == pytest.approx(0.3)
    with pytest.raises(DataError, match="undefined"):
        paper_mean({"bicycle": 0.5}, ["person", "car"])


def test_split_ids_is_seeded_and_disjoint() -> None:
    ids = [f"{i:05d}" for i in range(50)]
    train, val = split_ids(ids, 0.2, seed=0)
    assert len(val) == 10 and len(train) == 40 and not set(train) & set(val)
    assert split_ids(list(reversed(ids)), 0.2, seed=0) == (train, val)
    assert split_ids(ids, 0.2, seed=1)[1] != val


# ------------------------------------------------------------------------------------------ params


def test_dataset_entries_are_checked_by_the_schema() -> None:
    with pytest.raises(ValidationError, match="format"):
        DetectDataset.model_validate({k: v for k, v in SYNTHETIC_ENTRY.items() if k != "format"})
    with pytest.raises(ValidationError, match=r"paper_classes \['bus'\]"):
        DetectDataset.model_validate({**SYNTHETIC_ENTRY, "paper_classes": ["bus"]})
    with pytest.raises(ValidationError, match="source_classes"):
        DetectDataset.model_validate({**SYNTHETIC_ENTRY, "source_classes": None})
    with pytest.raises(ValidationError, match="val_fraction"):
        DetectDataset.model_validate({**SYNTHETIC_ENTRY, "val": "train"})
    assert DetectDataset.model_validate({**SYNTHETIC_ENTRY, "val": "train", "val_fraction": 0.25}).val_fraction == 0.25
    with pytest.raises(ValidationError, match="val_fraction"):
        DetectDataset.model_validate({**SYNTHETIC_ENTRY, "val": "train", "val_fraction": 1})


def test_one_split_for_train_and_val_needs_val_fraction_in_one_line() -> None:
    entry = {**SYNTHETIC_ENTRY, "val": "train"}
    with pytest.raises(ParamsError, match=r"detect\.datasets\.X = .*val_fraction"):
        validate_params({"detect": {"datasets": {"X": entry}, "run": ["X"]}})


def test_run_names_defined_datasets() -> None:
    with pytest.raises(ParamsError, match=r"detect = .*run names \['FMB'\]"):
        validate_params({"detect": {"run": ["synthetic", "FMB"]}})


def test_default_params_define_valid_datasets() -> None:
    cfg = load_params(REPO / "params.yaml").detect
    assert set(cfg.run) <= set(cfg.datasets) and {"MSRS", "M3FD", "synthetic"} <= set(cfg.datasets)
    assert cfg.datasets["MSRS"].paper_classes == ["person", "car"] and "bicycle" in cfg.datasets["MSRS"].classes
    assert len(cfg.datasets["M3FD"].paper_classes) == 6 and cfg.datasets["M3FD"].format == "voc"


# ----------------------------------------------------------------------------------------- datasets


def test_build_dataset(synthetic_root: Path, tmp_path: Path) -> None:
    built = build_dataset(synthetic_root, "synthetic", SYNTHETIC, "occo", tmp_path / "occo", seed=0)
    data = yaml.safe_load(built.data_yaml.read_text(encoding="utf-8"))
    assert Path(data["path"]).is_absolute() and data["names"] == {0: "person", 1: "car"}
    assert (built.n_train, built.n_val) == (8, 4)
    images = sorted((tmp_path / "occo/images/val").iterdir())
    assert [p.stem for p in images] == ["syn_008", "syn_009", "syn_010", "syn_011"]
    assert images[0].read_bytes() == (synthetic_root / "data/fused/occo/synthetic/test/syn_008.png").read_bytes()
    src = synthetic_root / "data/raw/synthetic/test/labels/det/syn_008.txt"
    np.testing.assert_allclose(
        np.loadtxt(tmp_path / "occo/labels/val/syn_008.txt", ndmin=2), np.loadtxt(src, ndmin=2), atol=1e-6
    )
    assert built.val_classes == {0, 1}


def test_build_dataset_names_a_missing_method_image(synthetic_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(synthetic_root / "data", root / "data", symlinks=True)
    (root / "data/fused/occo/synthetic/train/syn_003.png").unlink()
    with pytest.raises(DataError, match="has no image syn_003"):
        build_dataset(root, "synthetic", SYNTHETIC, "occo", tmp_path / "out", seed=0)
    with pytest.raises(DataError, match="data/fused/Other/synthetic/train"):
        build_dataset(root, "synthetic", SYNTHETIC, "Other", tmp_path / "out", seed=0)


def test_classes_txt_must_match_source_classes(synthetic_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(synthetic_root / "data", root / "data", symlinks=True)
    (root / "data/raw/synthetic/train/labels/classes.txt").write_text("0 car\n1 person\n", encoding="utf-8")
    with pytest.raises(DataError, match="classes.txt lists classes"):
        build_dataset(root, "synthetic", SYNTHETIC, "visible", tmp_path / "out", seed=0)


@pytest.mark.skipif(not (SHARED / "datasets/MSRS").is_dir(), reason="../shared/datasets/MSRS not present")
def test_build_dataset_on_shared_msrs(tmp_path: Path) -> None:
    """The real MSRS layout after the download stage: labels/det/{fusion,...}/ with classes.txt above."""
    from occo.fetch.datasets import import_dataset

    import_dataset("MSRS", SHARED / "datasets/MSRS", tmp_path / "data/raw", split="test")
    msrs = load_params(REPO / "params.yaml").detect.datasets["MSRS"]
    spec = msrs.model_copy(update={"train": "test", "val_fraction": 0.5})
    built = build_dataset(tmp_path, "MSRS", spec, "infrared", tmp_path / "out", seed=0)
    assert (built.n_train, built.n_val) == (7, 7)
    n_boxes = sum(len(np.loadtxt(p, ndmin=2)) for p in (tmp_path / "out/labels").rglob("*.txt") if p.stat().st_size)
    source = (SHARED / "datasets/MSRS/labels/det/fusion").glob("*.txt")
    assert n_boxes == sum(sum(1 for line in p.read_text().splitlines() if line.strip()) for p in source)
    assert built.val_classes <= {0, 1, 2} and 0 in built.val_classes


# ------------------------------------------------------------------------------------------- weights


def test_missing_weights_name_file_url_and_param(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = Detect(model="yolov5s", weights="nowhere/yolov5su.pt", pretrained=True)
    with pytest.raises(WeightsUnavailableError) as info:
        resolve_model_weights(cfg, tmp_path)
    message = str(info.value)
    assert "nowhere/yolov5su.pt" in message and "detect.weights" in message
    assert "https://github.com/ultralytics/assets/releases/download/v8.3.0/yolov5su.pt" in message

    def offline(url: str, dest: Path, *, hint: str, **_: object) -> Path:
        raise DataError(f"download of {url} failed (network unreachable); {hint}")

    monkeypatch.setattr("occo.fetch.weights.fetch", offline)
    with pytest.raises(WeightsUnavailableError) as info:
        resolve_model_weights(cfg.model_copy(update={"weights": None}), tmp_path)
    message = str(info.value)
    assert "models/pretrained/yolov5su.pt" in message and "detect.weights" in message
    assert "releases/download/v8.3.0/yolov5su.pt" in message
    assert resolve_model_weights(cfg.model_copy(update={"pretrained": False}), tmp_path) is None
    with pytest.raises(ValidationError, match="model"):
        Detect(model="yolov8s")


def test_stage_reports_missing_weights_in_one_line(yolo_config: Path, synthetic_root: Path, tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(
        yaml.safe_dump({"detect": {**SMOKE_ENTRY, "pretrained": True, "weights": str(tmp_path / "yolov5nu.pt")}}),
        encoding="utf-8",
    )
    with pytest.raises(SystemExit, match=r"detect: .*yolov5nu\.pt.*detect\.weights"):
        _load_stage().main(["--params", str(params), "--root", str(synthetic_root), "--part", "reference"])


@pytest.mark.parametrize("where", ["registry copy placed by hand", "detect.weights"])
def test_yolo_weights_carrying_code_are_refused_and_never_run(
    yolo_config: Path, synthetic_root: Path, tmp_path: Path, where: str
) -> None:
    """A models/pretrained/yolov5nu.pt placed by hand (the offline route) or named by detect.weights used to pass the
    format check and be unpickled by ultralytics: the payload in it ran."""
    import torch

    root = tmp_path / "root"
    shutil.copytree(synthetic_root / "data", root / "data")
    marker = tmp_path / "executed"
    evil = root / ("models/pretrained/yolov5nu.pt" if where.startswith("registry") else "elsewhere/yolov5nu.pt")
    evil.parent.mkdir(parents=True)
    torch.save({"model": PicklePayload(marker), "ema": None}, evil)
    weights = None if where.startswith("registry") else str(evil)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"detect": {**SMOKE_ENTRY, "pretrained": True, "weights": weights}}))
    with pytest.raises(SystemExit) as err:
        _load_stage().main(["--params", str(params), "--root", str(root), "--part", "reference"])
    line = str(err.value.code)
    assert line.startswith(f"detect: {evil} holds pickled Python objects (io.open)") and "\n" not in line
    assert not marker.exists()


def _ultralytics_checkpoint(path: Path, model: str = "yolov5n") -> dict[str, Any]:
    """A checkpoint as ultralytics publishes them (strip_optimizer's form: the whole network pickled in fp16, no EMA,
    numpy scalars among its metrics); returns the network's state in fp16."""
    import torch
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(0)
    network = DetectionModel(f"{model}.yaml", verbose=False)
    with torch.no_grad():
        for param in network.parameters():
            param.add_(torch.randn_like(param))  # unlike any freshly built network
    network.args = {"imgsz": 640, "epochs": 300}
    network.half()
    torch.save(
        {
            "date": "2023-04-01",
            "version": "8.0.0",
            "model": network,
            "ema": None,
            "optimizer": None,
            "train_args": {"imgsz": 640},
            "train_metrics": {"metrics/mAP50(B)": np.float64(0.5)},
        },
        path,
    )
    return {k: v.clone() for k, v in network.state_dict().items()}


def test_yolo_weights_are_read_without_unpickling_code(yolo_config: Path, tmp_path: Path) -> None:
    """The network of an ultralytics checkpoint comes out of a weights-only load, tensor for tensor, into a network
    built from ultralytics' YAML; a checkpoint of another size is refused in one line."""
    path = tmp_path / "yolov5nu.pt"
    state = _ultralytics_checkpoint(path)
    loaded = coco_network("yolov5n", path).state_dict()
    assert loaded.keys() == state.keys()
    assert all(torch_equal(loaded[k], state[k]) for k in state)
    with pytest.raises(DataError) as err:
        coco_network("yolov5s", path)
    assert str(err.value).startswith(f"{path} does not fit yolov5s: ") and "\n" not in str(err.value)


def torch_equal(a: Any, b: Any) -> bool:
    import torch

    return torch.equal(a.to(b.dtype), b)


def test_prepare_ultralytics_ignores_a_global_settings_file(tmp_path: Path) -> None:
    """A fresh process: settings, font and integrations land under <root>/.cache, never in ~/.config."""
    home = tmp_path / "home"
    stray = home / ".config/Ultralytics/settings.json"
    stray.parent.mkdir(parents=True)
    stray.write_text(json.dumps({"datasets_dir": "/nonexistent", "runs_dir": "/nonexistent", "dvc": True}))
    root = tmp_path / "root"
    env = {k: v for k, v in os.environ.items() if k not in ("YOLO_CONFIG_DIR", "XDG_CONFIG_HOME", "YOLO_OFFLINE")}
    code = (
        "import sys; from pathlib import Path; from occo.downstream.detect.train import prepare_ultralytics; "
        "u = prepare_ultralytics(Path(sys.argv[1])); print(u.USER_CONFIG_DIR); print(u.SETTINGS['datasets_dir']); "
        "print(u.SETTINGS['dvc'], u.ONLINE)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(root)],
        env={**env, "HOME": str(home)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    config = root / ".cache/ultralytics/Ultralytics"
    assert out[-3] == str(config) and out[-2] != "/nonexistent" and out[-1] == "False False"
    assert (config / "Arial.ttf").is_file() and (config / "settings.json").is_file()
    assert json.loads(stray.read_text())["dvc"] is True


def test_restrictions_name_the_param(yolo_config: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"'sar' is not in params detect\.methods"):
        run_detect(smoke(), tmp_path, method="sar")
    with pytest.raises(DataError, match=r"'FMB' is not in params detect\.run"):
        run_detect(smoke(), tmp_path, dataset="FMB")


# ------------------------------------------------------------------------------------ the stage, once


@dataclass(frozen=True)
class StageRun:
    """The stage run on a synthetic root as the pipeline would, with what it said."""

    root: Path
    cfg: Detect
    params: dict[str, Any]  # the detect section written to params files
    first_error: str  # `ours` before `reference` ran
    log: list[str]  # the messages of the `reference` run

    def run(self, part: str, root: Path | None = None, **changes: Any) -> None:
        """``stages/detect.py --part <part>`` on ``root`` (default: this run's) with ``changes`` to the params."""
        params = (root or self.root).parent / f"params-{part}.yaml"
        params.write_text(yaml.safe_dump({"detect": {**self.params, **changes}}), encoding="utf-8")
        _load_stage().main(["--params", str(params), "--root", str(root or self.root), "--part", part])


@pytest.fixture(scope="module")
def stage(yolo_config: Path, synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> StageRun:
    """`ours` before `reference` (it trains occo, then stops: no reference result), `reference` (visible and
    infrared; MSRS, not imported, skipped), `ours` again (occo reused, every method gathered)."""
    root = tmp_path_factory.mktemp("stage") / "root"
    shutil.copytree(synthetic_root / "data", root / "data", symlinks=True)
    defaults = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))["detect"]["datasets"]
    params = {
        **SMOKE_ENTRY,
        "run": ["MSRS", "synthetic"],
        "datasets": {"MSRS": defaults["MSRS"], "synthetic": SYNTHETIC_ENTRY},
    }
    run = StageRun(root, Detect.model_validate(params), params, "", [])
    with pytest.raises(SystemExit) as first:
        run.run("ours")
    with detect_log() as log:
        run.run("reference")
    run.run("ours")
    return StageRun(root, run.cfg, params, str(first.value), log)


@pytest.mark.slow
def test_ours_before_reference_names_the_missing_result(stage: StageRun) -> None:
    assert "no reference result" in stage.first_error and "reference/detect/synthetic/visible.json" in stage.first_error


@pytest.mark.slow
def test_reference_part_trains_the_source_modalities(stage: StageRun) -> None:
    assert any("skipping MSRS" in line for line in stage.log) and not (stage.root / "reference/detect/MSRS").exists()
    reference = stage.root / "reference/detect/synthetic"
    assert sorted(p.name for p in reference.iterdir()) == ["infrared.json", "visible.json"]
    models = stage.root / "models/detect_reference/synthetic"
    assert sorted(p.name for p in models.iterdir()) == ["infrared", "visible"]


@pytest.mark.slow
def test_ours_part_trains_our_fusion_and_gathers_every_method(stage: StageRun) -> None:
    root = stage.root
    assert sorted(p.name for p in (root / "models/detect/synthetic").iterdir()) == ["occo"]
    for method in SMOKE_ENTRY["methods"]:
        metrics = json.loads((root / f"metrics/detect/synthetic/{method}.json").read_text(encoding="utf-8"))
        check_schema(metrics, ["person", "car"])
        assert (metrics["epochs"], metrics["imgsz"], metrics["n_train"], metrics["n_val"]) == (1, 64, 8, 4)
        models = "models/detect" if method == "occo" else "models/detect_reference"
        assert (root / f"{models}/synthetic/{method}/weights/last.pt").is_file()
    table = (root / "reports/detect/synthetic.md").read_text(encoding="utf-8")
    assert "| occo |" in table and "| infrared |" in table


@pytest.mark.slow
def test_ultralytics_runs_offline(stage: StageRun, yolo_config: Path) -> None:
    import ultralytics.utils as uutils

    assert (yolo_config / "Ultralytics/Arial.ttf").is_file()
    assert uutils.SETTINGS["dvc"] is False and uutils.SETTINGS["mlflow"] is False


@pytest.mark.slow
def test_finished_runs_are_reused(stage: StageRun) -> None:
    last = stage.root / "models/detect/synthetic/occo/weights/last.pt"
    stamp = last.stat().st_mtime_ns
    stage.run("ours")
    assert last.stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_one_method_alone_gives_the_same_outputs(stage: StageRun, synthetic_root: Path, tmp_path: Path) -> None:
    alone = tmp_path / "alone"
    shutil.copytree(synthetic_root / "data", alone / "data", symlinks=True)
    out = run_detect(stage.cfg, alone, dataset="synthetic", method="infrared", write_tables=False)
    assert list(out) == ["synthetic"] and list(out["synthetic"]) == ["infrared"]
    metrics = json.loads((stage.root / "metrics/detect/synthetic/infrared.json").read_text(encoding="utf-8"))
    assert out["synthetic"]["infrared"] == metrics
    assert (alone / "metrics/detect/synthetic/infrared.json").read_text() == json.dumps(metrics, indent=2) + "\n"
    assert sorted(p.name for p in (alone / "models/detect/synthetic").iterdir()) == ["infrared"]
    assert not (alone / "reports/detect").exists()


@pytest.mark.slow
def test_another_seed_trains_again(stage: StageRun, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "root"
    shutil.copytree(stage.root, root, symlinks=True)
    last = root / "models/detect/synthetic/occo/weights/last.pt"
    stamp = last.stat().st_mtime_ns
    with caplog.at_level("INFO", logger="occo.downstream.detect"):
        stage.run("ours", root, methods=["occo"], seed=1)
    assert "params changed (images, labels unchanged)" in caplog.text and "starting over" in caplog.text
    assert last.stat().st_mtime_ns != stamp
    state = json.loads((root / "models/detect/synthetic/occo/occo_run.json").read_text(encoding="utf-8"))
    assert state["identity"]["params"]["seed"] == 1 and state["validated"] is True and state["finished"] is True
    assert state["checkpoint"] == {"epochs": 1, "sha256": sha256_file(last)}


@pytest.mark.slow
def test_a_replaced_last_pt_is_never_unpickled(
    stage: StageRun, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A finished run whose weights/last.pt was swapped for a malicious pickle: occo does not load it (no
    torch.load(weights_only=False)) nor hand it to ultralytics; it trains the run again."""
    import torch

    cfg = train_config(stage.cfg, tmp_path)
    data = build_dataset(stage.root, "synthetic", SYNTHETIC, "infrared", tmp_path / "d", seed=0)
    run_dir = tmp_path / "run"
    shutil.copytree(stage.root / "models/detect_reference/synthetic/infrared", run_dir)
    last = run_dir / "weights/last.pt"
    with caplog.at_level("INFO", logger="occo.downstream.detect"):
        assert train_detector(cfg, data, run_dir) == last
    assert "finished run found" in caplog.text  # the same run as the stage's
    caplog.clear()
    marker = tmp_path / "executed"
    torch.save({"epoch": -1, "ema": PicklePayload(marker)}, last)
    with caplog.at_level("INFO", logger="occo.downstream.detect"):
        assert train_detector(cfg, data, run_dir) == last
    assert not marker.exists()
    assert "not the checkpoint this run recorded" in caplog.text and "starting over" in caplog.text
    assert read_run_state(run_dir)["checkpoint"]["sha256"] == sha256_file(last)


@pytest.mark.slow
def test_changed_labels_start_the_run_over(stage: StageRun, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "root"
    shutil.copytree(stage.root / "data", root / "data", symlinks=True)
    run_dir = root / "models/detect/synthetic/visible"
    shutil.copytree(stage.root / "models/detect_reference/synthetic/visible", run_dir)
    cfg = train_config(stage.cfg, root)
    label = root / "data/raw/synthetic/train/labels/det/syn_000.txt"
    label.write_text("0 0.5 0.5 0.2 0.2\n", encoding="utf-8")
    with caplog.at_level("INFO", logger="occo.downstream.detect"):
        train_detector(cfg, build_dataset(root, "synthetic", SYNTHETIC, "visible", root / "d", seed=0), run_dir)
    assert "labels changed (params, images unchanged)" in caplog.text and "starting over" in caplog.text


@pytest.mark.slow
def test_interrupted_run_resumes_from_last(
    yolo_config: Path,
    synthetic_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from ultralytics.engine.trainer import BaseTrainer

    prepare_ultralytics(tmp_path)
    cfg = train_config(smoke(epochs=2), tmp_path)
    data = build_dataset(synthetic_root, "synthetic", SYNTHETIC, "visible", tmp_path / "d", seed=0)
    run_dir = tmp_path / "run"
    run_callbacks = BaseTrainer.run_callbacks

    def stop_after_save(self: BaseTrainer, event: str) -> None:
        run_callbacks(self, event)
        if event == "on_model_save":
            raise KeyboardInterrupt  # as if stopped right after the first epoch's checkpoint was recorded

    monkeypatch.setattr(BaseTrainer, "run_callbacks", stop_after_save)
    with pytest.raises(KeyboardInterrupt):
        train_detector(cfg, data, run_dir)
    monkeypatch.undo()
    last = run_dir / "weights/last.pt"
    state = read_run_state(run_dir)
    assert state["checkpoint"] == {"epochs": 1, "sha256": sha256_file(last)} and not state["finished"]
    with caplog.at_level("INFO", logger="occo.downstream.detect"):
        assert train_detector(cfg, data, run_dir) == last
    assert "resuming from" in caplog.text and "after epoch 1 of 2" in caplog.text
    assert read_run_state(run_dir)["finished"]
    epochs = [line.split(",")[0] for line in (run_dir / "results.csv").read_text().splitlines()[1:]]
    assert epochs == ["1", "2"]


@pytest.mark.slow
def test_training_starts_from_the_weights_read_without_unpickling(
    yolo_config: Path, synthetic_root: Path, tmp_path: Path
) -> None:
    """ultralytics is handed a network built from its YAML holding the file's tensors, never the file: after one
    short epoch the detector's backbone is still the checkpoint's."""
    import torch

    path = tmp_path / "yolov5nu.pt"
    state = _ultralytics_checkpoint(path)
    cfg = train_config(smoke(pretrained=True, weights=str(path)), tmp_path)
    data = build_dataset(synthetic_root, "synthetic", SYNTHETIC, "visible", tmp_path / "d", seed=0)
    last = train_detector(cfg, data, tmp_path / "run")
    trained = torch.load(last, weights_only=False)["model"].state_dict()  # our own run's file, recorded by sha256
    first = "model.0.conv.weight"
    correlation = torch.corrcoef(torch.stack([trained[first].float().flatten(), state[first].float().flatten()]))
    assert correlation[0, 1] > 0.9


def test_each_method_is_validated_once_by_us(stage: StageRun) -> None:
    """ultralytics trains only (no validation of its own, so no best.pt and no metrics in results.csv); the one
    validation is validate_detector's, on last.pt."""
    for run_dir in (
        stage.root / "models/detect/synthetic/occo",
        stage.root / "models/detect_reference/synthetic/visible",
    ):
        assert (run_dir / "weights/last.pt").is_file() and not (run_dir / "weights/best.pt").exists()
        header = (run_dir / "results.csv").read_text(encoding="utf-8").splitlines()[0]
        assert "train/box_loss" in header and "metrics/" not in header, header
