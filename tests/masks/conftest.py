"""Shared fixtures for the masks tests: offline env, a synthetic raw root, the stage module, output checks."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from PIL import Image

from occo.config import Masks
from occo.data import find_pairs, load_array, make_synthetic
from occo.masks.splits import run_masks
from support import REPO


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(name, "1")


@pytest.fixture(scope="module")
def stage() -> SimpleNamespace:
    """The masks stage: ``run(params, root)`` on a `masks` section dict, ``main(argv)`` its command line."""
    spec = importlib.util.spec_from_file_location("occo_test_stage_masks", REPO / "stages" / "masks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return SimpleNamespace(run=lambda params, root: run_masks(Masks.model_validate(params), root), main=module.main)


@pytest.fixture
def synthetic_root():
    """Makes a repo root holding data/raw/synthetic (240x320) and data/raw/INDEX.json as the download stage
    writes them."""
    return make_root


def make_root(root: Path, n_train: int = 2, n_test: int = 1) -> Path:
    make_synthetic(root / "data/raw/synthetic", n_train=n_train, n_test=n_test)
    index = {"synthetic": {"train": n_train, "test": n_test}}
    (root / "data/raw/INDEX.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return root


@pytest.fixture
def params() -> dict:
    """The repo's `masks` params with tiny random-init models on the synthetic train split."""
    section = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))["masks"]
    section.update(init="tiny", device="cpu", datasets={"synthetic": ["train"]}, gallery=1)
    return section


@pytest.fixture
def check_outputs():
    """Checks a synthetic train split's masks (binary, source size), box JSON and whether boxes were found."""
    return _check_outputs


def _check_outputs(root: Path, *, expect_boxes: bool) -> None:
    raw, out = root / "data/raw/synthetic/train", root / "data/masks/synthetic/train"
    for pair in find_pairs(ir=raw / "ir", vi=raw / "vi"):
        with Image.open(pair.ir) as source:
            size = source.size
        for kind in ("ir", "vi"):
            mask = load_array(out / kind / f"{pair.id}.png")
            assert mask.dtype == np.uint8 and mask.shape == (size[1], size[0])
            assert set(np.unique(mask).tolist()) <= {0, 255}
        record = json.loads((out / "boxes" / f"{pair.id}.json").read_text(encoding="utf-8"))
        assert record["id"] == pair.id and record["size"] == [size[1], size[0]]
        assert record["prompt"] == Masks().prompt and record["init"] == "tiny"
        for kind in ("ir", "vi"):
            found = record[kind]
            assert len(found["boxes"]) == len(found["scores"]) == len(found["phrases"])
            assert (len(found["boxes"]) > 0) == expect_boxes
            for (x0, y0, x1, y1), score in zip(found["boxes"], found["scores"]):
                assert 0 <= x0 <= x1 <= size[0] and 0 <= y0 <= y1 <= size[1] and score > record["box_threshold"]
            if not expect_boxes:
                assert not load_array(out / kind / f"{pair.id}.png").any()
