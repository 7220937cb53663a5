"""The DVC stages `download`, `evaluate_reference` then `evaluate` on a temporary root (synthetic set and a
local flat dataset)."""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from occo.config import Evaluate
from occo.data import DataError, save_png
from occo.metrics.scoring import reference_methods, run_evaluate
from occo.metrics.suite import METRICS
from support import REPO

H, W = 48, 56


def _load_stage(name: str):
    spec = importlib.util.spec_from_file_location(f"occo_test_stage_{name}", REPO / "stages" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _image(rng: np.random.Generator) -> np.ndarray:
    y, x = np.mgrid[0:H, 0:W]
    base = 120 + 60 * np.sin(x / rng.uniform(3, 7)) * np.cos(y / rng.uniform(3, 7))
    return np.clip(np.round(base + rng.normal(0, 10, (H, W))), 0, 255).astype(np.uint8)


def _flat_dataset(root: Path, ids, *, fused: str | None, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for id_ in ids:
        ir, vi = _image(rng), _image(rng)
        save_png(root / "ir" / f"{id_}.png", ir)
        save_png(root / "vi" / f"{id_}.png", np.stack([vi, vi // 2 + 60, 255 - vi], axis=-1))
        if fused is not None:
            save_png(root / "fused" / fused / f"{id_}.png", np.maximum(ir, vi))


@pytest.fixture(scope="module")
def stage_run(tmp_path_factory):
    """Run download then evaluate once; return (root, captured warning messages)."""
    root = tmp_path_factory.mktemp("stage_root")
    _flat_dataset(root / "local_src", ["p1", "p2", "p3"], fused="MyMethod", seed=1)
    _flat_dataset(root / "train_src", ["q1"], fused=None, seed=2)
    # An explicit external method for Local, outside the method roots.
    rng = np.random.default_rng(3)
    for id_ in ("p1", "p3"):
        save_png(root / "elsewhere" / "Ext" / f"{id_}.png", _image(rng))
    params = {
        "download": {
            "synthetic": {"n_train": 1, "n_test": 2, "height": 64, "width": 80, "seed": 0},
            "datasets": {
                "Local": {"source": "local_src", "split": "test", "limit": None, "optional": False},
                "TrainOnly": {"source": "train_src", "split": "train", "limit": None},
                "Absent": {"source": "does_not_exist", "split": "test", "optional": True},
            },
        },
        "evaluate": {
            "variant": "matlab",
            "device": "cpu",
            "batch_size": 2,
            "baselines": ["visible", "infrared", "mean", "max"],
            "splits": {"Local": "test"},
            "external": {"Ext": {"Local": "elsewhere/Ext"}},
        },
    }
    params_path = root / "params.yaml"
    params_path.write_text(yaml.safe_dump(params), encoding="utf-8")

    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    handler = Keep(level=logging.WARNING)
    logging.getLogger().addHandler(handler)
    try:
        _load_stage("download").main(["--params", str(params_path), "--root", str(root)])
        # our fused images of Local: a method the `evaluate` part scores on top of the reference scores
        for id_ in ("p1", "p2"):
            save_png(root / "data/fused/occo/Local/test" / f"{id_}.png", _image(rng))
        evaluate = _load_stage("evaluate")
        evaluate.main(["--params", str(params_path), "--root", str(root), "--part", "reference"])
        evaluate.main(["--params", str(params_path), "--root", str(root), "--part", "ours"])
    finally:
        logging.getLogger().removeHandler(handler)
    return root, [(r.name, r.getMessage()) for r in records]


@pytest.mark.slow
def test_download_index(stage_run):
    root, _ = stage_run
    index = json.loads((root / "data/raw/INDEX.json").read_text(encoding="utf-8"))
    assert index == {"Local": {"test": 3}, "TrainOnly": {"train": 1}, "synthetic": {"test": 2, "train": 1}}
    assert sorted(p.name for p in (root / "data/external/MyMethod/Local/test").iterdir()) == [
        "p1.png",
        "p2.png",
        "p3.png",
    ]


def _check_summary(path: Path, methods: list[str], n: dict[str, int]) -> dict:
    summary = json.loads(path.read_text(encoding="utf-8"))
    assert list(summary) == methods
    for method, s in summary.items():
        assert set(s) == set(METRICS) | {"n"}, method
        assert s["n"] == n[method]
        for k in METRICS:
            assert s[k] is None or (isinstance(s[k], float) and np.isfinite(s[k])), (method, k)
    return summary


@pytest.mark.slow
def test_metrics_json_schema(stage_run):
    root, _ = stage_run
    baselines = ["visible", "infrared", "mean", "max"]
    syn = _check_summary(root / "metrics/fusion/synthetic.json", baselines, dict.fromkeys(baselines, 2))
    assert syn["visible"]["SCD"] is None and syn["mean"]["SCD"] is not None
    local = _check_summary(
        root / "metrics/fusion/Local.json",
        [*baselines, "MyMethod", "Ext", "occo"],
        dict.fromkeys(baselines, 3) | {"MyMethod": 3, "Ext": 2, "occo": 2},
    )
    assert all(local["MyMethod"][k] is not None for k in METRICS)
    reference = json.loads((root / "reference/fusion/Local.json").read_text(encoding="utf-8"))
    assert list(reference) == [*baselines, "MyMethod", "Ext"]  # ours is never in the reference scores
    assert all(reference[m] == local[m] for m in reference)


@pytest.mark.slow
def test_reports_csv_and_md(stage_run):
    root, _ = stage_run
    for dataset, methods, n in (
        ("synthetic", ["visible", "infrared", "mean", "max"], 2),
        ("Local", ["visible", "infrared", "mean", "max", "MyMethod", "Ext", "occo"], 3),
    ):
        per_image = pd.read_csv(root / f"reports/fusion/{dataset}.csv", dtype={"id": str})
        assert list(per_image.columns) == ["method", "id", *METRICS]
        assert list(dict.fromkeys(per_image["method"])) == methods
        counts = per_image.groupby("method").size()
        assert all(counts[m] == (2 if m in ("Ext", "occo") else n) for m in methods)
        summary = json.loads((root / f"metrics/fusion/{dataset}.json").read_text(encoding="utf-8"))
        for m in methods:
            en = per_image.loc[per_image["method"] == m, "EN"].mean()
            assert summary[m]["EN"] == pytest.approx(en, rel=1e-9)
        md = (root / f"reports/fusion/{dataset}.md").read_text(encoding="utf-8")
        assert md.startswith(f"### {dataset} test ({n} pairs, metric variant matlab)")
        assert "| Method | n | " + " | ".join(METRICS) + " |" in md
        for m in methods:
            assert f"| {m} |" in md


@pytest.mark.slow
def test_dataset_without_evaluated_split_is_skipped_with_a_warning(stage_run):
    root, records = stage_run
    assert not (root / "metrics/fusion/TrainOnly.json").exists()
    assert not (root / "reports/fusion/TrainOnly.csv").exists()
    assert sorted(p.name for p in (root / "metrics/fusion").iterdir()) == ["Local.json", "synthetic.json"]
    skipped = [msg for name, msg in records if name == "occo.metrics.scoring"]
    assert len(skipped) == 2  # once per part
    assert all("TrainOnly" in msg and "'test'" in msg and "train" in msg for msg in skipped)
    # The optional dataset whose source is absent was skipped by the download stage.
    assert any(name == "occo.fetch.datasets" and "Absent" in msg for name, msg in records)


def test_reference_methods_layout(tmp_path):
    (tmp_path / "data/external/A/DS/test").mkdir(parents=True)
    (tmp_path / "data/external/B/DS/train").mkdir(parents=True)
    (tmp_path / "data/external/C/Other/test").mkdir(parents=True)
    (tmp_path / "data/fused/occo/DS/test").mkdir(parents=True)
    cfg = Evaluate(baselines=["mean"], external={"X": {"DS": "x"}})
    methods = reference_methods(cfg, tmp_path, "DS", "test")
    assert methods == {"mean": None, "A": tmp_path / "data/external/A/DS/test", "X": (tmp_path / "x").resolve()}


def test_ours_part_needs_the_reference_scores(tmp_path):
    (tmp_path / "data/raw/DS/test/ir").mkdir(parents=True)
    (tmp_path / "data/raw/DS/test/vi").mkdir(parents=True)
    save_png(tmp_path / "data/raw/DS/test/ir/a.png", np.zeros((8, 8), np.uint8))
    save_png(tmp_path / "data/raw/DS/test/vi/a.png", np.zeros((8, 8), np.uint8))
    (tmp_path / "data/raw/INDEX.json").write_text(json.dumps({"DS": {"test": 1}}))
    with pytest.raises(DataError, match="run the evaluate_reference stage first"):
        run_evaluate(Evaluate(device="cpu", batch_size=1, baselines=[]), tmp_path)


def test_a_published_name_taken_by_evaluate_external_is_refused(tmp_path):
    """An external folder named like a published method used to replace its row silently."""
    (tmp_path / "data/external/A/DS/test").mkdir(parents=True)
    cfg = Evaluate(baselines=["mean"], external={"A": {"DS": "x"}})
    with pytest.raises(DataError) as err:
        reference_methods(cfg, tmp_path, "DS", "test")
    assert str(err.value).startswith("evaluate.external.A: ") and "rename the entry" in str(err.value)


def test_our_method_named_like_a_reference_method_is_refused(tmp_path):
    """data/fused/visible (an extra checkpoint named `visible`) used to replace the visible row (EN 5.68 -> 6.03)."""
    for kind in ("ir", "vi"):
        save_png(tmp_path / f"data/raw/DS/test/{kind}/a.png", np.full((8, 8), 100, np.uint8))
    save_png(tmp_path / "data/fused/visible/DS/test/a.png", np.full((8, 8), 50, np.uint8))
    (tmp_path / "data/raw/INDEX.json").write_text(json.dumps({"DS": {"test": 1}}))
    (tmp_path / "reference/fusion").mkdir(parents=True)
    (tmp_path / "reference/fusion/DS.csv").write_text(
        "method,id," + ",".join(METRICS) + "\nvisible,a," + ",".join(["1.0"] * len(METRICS)) + "\n"
    )
    with pytest.raises(DataError) as err:
        run_evaluate(Evaluate(device="cpu", batch_size=1, baselines=["visible"]), tmp_path)
    assert "the method name 'visible' is also a reference method of DS" in str(err.value)
    assert not (tmp_path / "metrics/fusion/DS.json").exists()
