"""Detection stage: dataset building, paper arithmetic and metrics schema, weights errors, CPU smoke."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from occo.data import make_synthetic, sha256_file
from occo.data.io import DataError
from occo.downstream import detect
from occo.downstream.detect import DatasetSpec, build_dataset, detection_metrics, paper_mean, split_ids
from occo.fetch.weights import WeightsUnavailableError
from support import REPO

SYNTHETIC = {
    "train": "train",
    "val": "test",
    "labels": "det",
    "format": "yolo",
    "source_classes": ["person", "car"],
    "classes": ["person", "car"],
    "paper_classes": ["person", "car"],
}
MSRS_LIKE = DatasetSpec(
    name="MSRS",
    train="train",
    val="test",
    labels="det/fusion",
    format="yolo",
    classes=["person", "bicycle", "car"],
    paper_classes=["person", "car"],
    source_classes=["person", "bicycle", "car"],
)
SMOKE = {
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
    "datasets": {"synthetic": SYNTHETIC},
}


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


def test_dataset_spec_validation() -> None:
    assert DatasetSpec.from_params("synthetic", SYNTHETIC).classes == ["person", "car"]
    with pytest.raises(DataError, match="lacks format"):
        DatasetSpec.from_params("X", {k: v for k, v in SYNTHETIC.items() if k != "format"})
    with pytest.raises(DataError, match="paper_classes"):
        DatasetSpec.from_params("X", {**SYNTHETIC, "paper_classes": ["bus"]})
    with pytest.raises(DataError, match="val_fraction"):
        DatasetSpec.from_params("X", {**SYNTHETIC, "val": "train"})
    with pytest.raises(DataError, match="source_classes"):
        DatasetSpec.from_params("X", {**SYNTHETIC, "source_classes": None})


def test_split_ids_is_seeded_and_disjoint() -> None:
    ids = [f"{i:05d}" for i in range(50)]
    train, val = split_ids(ids, 0.2, seed=0)
    assert len(val) == 10 and len(train) == 40 and not set(train) & set(val)
    assert split_ids(list(reversed(ids)), 0.2, seed=0) == (train, val)
    assert split_ids(ids, 0.2, seed=1)[1] != val


def test_build_dataset(synthetic_root: Path, tmp_path: Path) -> None:
    spec = DatasetSpec.from_params("synthetic", SYNTHETIC)
    built = build_dataset(synthetic_root, spec, "occo", tmp_path / "occo", seed=0)
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
    spec = DatasetSpec.from_params("synthetic", SYNTHETIC)
    with pytest.raises(DataError, match="has no image syn_003"):
        build_dataset(root, spec, "occo", tmp_path / "out", seed=0)
    with pytest.raises(DataError, match="data/fused/Other/synthetic/train"):
        build_dataset(root, spec, "Other", tmp_path / "out", seed=0)


def test_classes_txt_must_match_source_classes(synthetic_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(synthetic_root / "data", root / "data", symlinks=True)
    (root / "data/raw/synthetic/train/labels/classes.txt").write_text("0 car\n1 person\n", encoding="utf-8")
    with pytest.raises(DataError, match="classes.txt lists classes"):
        build_dataset(root, DatasetSpec.from_params("synthetic", SYNTHETIC), "visible", tmp_path / "out", seed=0)


def test_missing_weights_name_file_url_and_param(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    params = {"model": "yolov5s", "weights": "nowhere/yolov5su.pt", "pretrained": True}
    with pytest.raises(WeightsUnavailableError) as info:
        detect.resolve_model_weights(params, tmp_path)
    message = str(info.value)
    assert "nowhere/yolov5su.pt" in message and "detect.weights" in message
    assert "https://github.com/ultralytics/assets/releases/download/v8.3.0/yolov5su.pt" in message

    def offline(url: str, dest: Path, *, hint: str, **_: object) -> Path:
        raise DataError(f"download of {url} failed (network unreachable); {hint}")

    monkeypatch.setattr("occo.fetch.weights.fetch", offline)
    with pytest.raises(WeightsUnavailableError) as info:
        detect.resolve_model_weights({**params, "weights": None}, tmp_path)
    message = str(info.value)
    assert "models/pretrained/yolov5su.pt" in message and "detect.weights" in message
    assert "releases/download/v8.3.0/yolov5su.pt" in message
    assert detect.resolve_model_weights({**params, "pretrained": False}, tmp_path) is None
    with pytest.raises(DataError, match="detect.model"):
        detect.resolve_model_weights({**params, "model": "yolov8s"}, tmp_path)


def _load_stage():
    spec = importlib.util.spec_from_file_location("occo_test_stage_detect", REPO / "stages/detect.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_default_params_define_valid_datasets() -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))["detect"]
    specs = {name: DatasetSpec.from_params(name, entry) for name, entry in params["datasets"].items()}
    assert set(params["run"]) <= set(specs) and {"MSRS", "M3FD", "synthetic"} <= set(specs)
    assert specs["MSRS"].paper_classes == ["person", "car"] and "bicycle" in specs["MSRS"].classes
    assert len(specs["M3FD"].paper_classes) == 6 and specs["M3FD"].format == "voc"


def test_stage_smoke_on_cpu(
    yolo_config: Path, synthetic_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "root"
    shutil.copytree(synthetic_root / "data", root / "data", symlinks=True)
    defaults = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))["detect"]["datasets"]
    smoke = {**SMOKE, "run": ["MSRS", "synthetic"], "datasets": {"MSRS": defaults["MSRS"], **SMOKE["datasets"]}}
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"detect": smoke}), encoding="utf-8")
    stage = _load_stage()

    def run(part: str) -> None:
        stage.main(["--params", str(params), "--root", str(root), "--part", part])

    with pytest.raises(SystemExit, match=r"no reference result .*reference/detect/synthetic/visible\.json"):
        run("ours")  # the reference part has not run
    run("reference")
    assert "skipping MSRS" in caplog.text and not (root / "reference/detect/MSRS").exists()
    assert sorted(p.name for p in (root / "reference/detect/synthetic").iterdir()) == ["infrared.json", "visible.json"]
    assert sorted(p.name for p in (root / "models/detect_reference/synthetic").iterdir()) == ["infrared", "visible"]
    run("ours")
    assert sorted(p.name for p in (root / "models/detect/synthetic").iterdir()) == ["occo"]

    assert (yolo_config / "Ultralytics/Arial.ttf").is_file()
    import ultralytics.utils as uutils

    assert uutils.SETTINGS["dvc"] is False and uutils.SETTINGS["mlflow"] is False
    for method in SMOKE["methods"]:
        metrics = json.loads((root / f"metrics/detect/synthetic/{method}.json").read_text(encoding="utf-8"))
        check_schema(metrics, ["person", "car"])
        assert (metrics["epochs"], metrics["imgsz"], metrics["n_train"], metrics["n_val"]) == (1, 64, 8, 4)
        models = "models/detect" if method == "occo" else "models/detect_reference"
        assert (root / f"{models}/synthetic/{method}/weights/last.pt").is_file()
    table = (root / "reports/detect/synthetic.md").read_text(encoding="utf-8")
    assert "| occo |" in table and "| infrared |" in table

    last = root / "models/detect/synthetic/occo/weights/last.pt"
    stamp = last.stat().st_mtime_ns
    run("ours")  # finished runs are reused
    assert last.stat().st_mtime_ns == stamp

    # one method alone, in another root: the same metrics and model as in the call that ran all three
    alone = tmp_path / "alone"
    shutil.copytree(synthetic_root / "data", alone / "data", symlinks=True)
    out = detect.run_detect(smoke, alone, dataset="synthetic", method="infrared", write_tables=False)
    assert list(out) == ["synthetic"] and list(out["synthetic"]) == ["infrared"]
    metrics = json.loads((root / "metrics/detect/synthetic/infrared.json").read_text(encoding="utf-8"))
    assert out["synthetic"]["infrared"] == metrics
    assert (alone / "metrics/detect/synthetic/infrared.json").read_text() == json.dumps(metrics, indent=2) + "\n"
    assert sorted(p.name for p in (alone / "models/detect/synthetic").iterdir()) == ["infrared"]
    assert not (alone / "reports/detect").exists()
    with pytest.raises(DataError, match=r"'sar' is not in params detect\.methods \(occo, visible, infrared\)"):
        detect.run_detect(smoke, alone, method="sar")
    with pytest.raises(DataError, match=r"'FMB' is not in params detect\.run \(MSRS, synthetic\)"):
        detect.run_detect(smoke, alone, dataset="FMB")

    params.write_text(yaml.safe_dump({"detect": {**smoke, "methods": ["occo"], "seed": 1}}), encoding="utf-8")
    with caplog.at_level("INFO", logger="occo.downstream.detect"):
        run("ours")  # another seed: trained again
    assert "params changed (images, labels unchanged) since this run started; starting over" in caplog.text
    assert last.stat().st_mtime_ns != stamp
    state = json.loads((root / "models/detect/synthetic/occo/occo_run.json").read_text(encoding="utf-8"))
    assert state["identity"]["params"]["seed"] == 1 and state["validated"] is True and state["finished"] is True
    assert state["checkpoint"] == {"epochs": 1, "sha256": sha256_file(last)}


def test_stage_reports_missing_weights_in_one_line(yolo_config: Path, synthetic_root: Path, tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(
        yaml.safe_dump({"detect": {**SMOKE, "pretrained": True, "weights": str(tmp_path / "yolov5nu.pt")}}),
        encoding="utf-8",
    )
    with pytest.raises(SystemExit, match=r"detect: .*yolov5nu\.pt.*detect\.weights"):
        _load_stage().main(["--params", str(params), "--root", str(synthetic_root), "--part", "reference"])


def test_prepare_ultralytics_ignores_a_global_settings_file(tmp_path: Path) -> None:
    """A fresh process: settings, font and integrations land under <root>/.cache, never in ~/.config."""
    home = tmp_path / "home"
    stray = home / ".config/Ultralytics/settings.json"
    stray.parent.mkdir(parents=True)
    stray.write_text(json.dumps({"datasets_dir": "/nonexistent", "runs_dir": "/nonexistent", "dvc": True}))
    root = tmp_path / "root"
    env = {k: v for k, v in os.environ.items() if k not in ("YOLO_CONFIG_DIR", "XDG_CONFIG_HOME", "YOLO_OFFLINE")}
    code = (
        "import sys; from pathlib import Path; from occo.downstream.detect import prepare_ultralytics; "
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


def test_interrupted_run_resumes_from_last(
    yolo_config: Path,
    synthetic_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from ultralytics.engine.trainer import BaseTrainer

    detect.prepare_ultralytics(tmp_path)
    cfg = detect.train_config({**SMOKE, "epochs": 2}, tmp_path)
    data = build_dataset(
        synthetic_root, DatasetSpec.from_params("synthetic", SYNTHETIC), "visible", tmp_path / "d", seed=0
    )
    run_dir = tmp_path / "run"
    run_callbacks = BaseTrainer.run_callbacks

    def stop_after_save(self: BaseTrainer, event: str) -> None:
        run_callbacks(self, event)
        if event == "on_model_save":
            raise KeyboardInterrupt  # as if stopped right after the first epoch's checkpoint was recorded

    monkeypatch.setattr(BaseTrainer, "run_callbacks", stop_after_save)
    with pytest.raises(KeyboardInterrupt):
        detect.train_detector(cfg, data, run_dir)
    monkeypatch.undo()
    last = run_dir / "weights/last.pt"
    state = detect._read_state(run_dir)
    assert state["checkpoint"] == {"epochs": 1, "sha256": sha256_file(last)} and not state["finished"]
    with caplog.at_level("INFO", logger="occo.downstream.detect"):
        assert detect.train_detector(cfg, data, run_dir) == last
    assert "resuming from" in caplog.text and "after epoch 1 of 2" in caplog.text
    assert detect._read_state(run_dir)["finished"]
    epochs = [line.split(",")[0] for line in (run_dir / "results.csv").read_text().splitlines()[1:]]
    assert epochs == ["1", "2"]


class _Payload:
    """Unpickling this creates ``path``: a stand-in for any code a pickle can run."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return open, (str(self.path), "w")


def test_a_replaced_last_pt_is_never_unpickled(
    yolo_config: Path, synthetic_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A finished run whose weights/last.pt was swapped for a malicious pickle: occo does not load it (no
    torch.load(weights_only=False)) nor hand it to ultralytics; it trains the run again."""
    import torch

    detect.prepare_ultralytics(tmp_path)
    cfg = detect.train_config(SMOKE, tmp_path)
    spec = DatasetSpec.from_params("synthetic", SYNTHETIC)
    data = build_dataset(synthetic_root, spec, "infrared", tmp_path / "d", seed=0)
    run_dir = tmp_path / "run"
    last = detect.train_detector(cfg, data, run_dir)
    marker = tmp_path / "executed"
    torch.save({"epoch": -1, "ema": _Payload(marker)}, last)
    with caplog.at_level("INFO", logger="occo.downstream.detect"):
        assert detect.train_detector(cfg, data, run_dir) == last
    assert not marker.exists()
    assert "is missing or not the checkpoint this run recorded (cut short or replaced); starting over" in caplog.text
    assert detect._read_state(run_dir)["checkpoint"]["sha256"] == sha256_file(last)


def test_changed_labels_start_the_run_over(
    yolo_config: Path, synthetic_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "root"
    shutil.copytree(synthetic_root / "data", root / "data", symlinks=True)
    detect.prepare_ultralytics(root)
    cfg = detect.train_config(SMOKE, root)
    spec = DatasetSpec.from_params("synthetic", SYNTHETIC)
    run_dir = root / "models/detect/synthetic/visible"
    detect.train_detector(cfg, build_dataset(root, spec, "visible", root / "d", seed=0), run_dir)
    label = root / "data/raw/synthetic/train/labels/det/syn_000.txt"
    label.write_text("0 0.5 0.5 0.2 0.2\n", encoding="utf-8")
    with caplog.at_level("INFO", logger="occo.downstream.detect"):
        detect.train_detector(cfg, build_dataset(root, spec, "visible", root / "d", seed=0), run_dir)
    assert "labels changed (params, images unchanged) since this run started; starting over" in caplog.text


SHARED_MSRS = REPO.parent / "shared/datasets/MSRS"


@pytest.mark.skipif(not SHARED_MSRS.is_dir(), reason="../shared/datasets/MSRS not present")
def test_build_dataset_on_shared_msrs(tmp_path: Path) -> None:
    """The real MSRS layout after the download stage: labels/det/{fusion,...}/ with classes.txt above."""
    from occo.fetch.datasets import import_dataset

    import_dataset("MSRS", SHARED_MSRS, tmp_path / "data/raw", split="test")
    defaults = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))["detect"]["datasets"]["MSRS"]
    spec = DatasetSpec.from_params("MSRS", {**defaults, "train": "test", "val_fraction": 0.5})
    built = build_dataset(tmp_path, spec, "infrared", tmp_path / "out", seed=0)
    assert (built.n_train, built.n_val) == (7, 7)
    n_boxes = sum(len(np.loadtxt(p, ndmin=2)) for p in (tmp_path / "out/labels").rglob("*.txt") if p.stat().st_size)
    source = (SHARED_MSRS / "labels/det/fusion").glob("*.txt")
    assert n_boxes == sum(sum(1 for line in p.read_text().splitlines() if line.strip()) for p in source)
    assert built.val_classes <= {0, 1, 2} and 0 in built.val_classes
