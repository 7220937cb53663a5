"""Fusion to colour PNGs (occo.fuse), the `fuse` stage and `occo fuse`."""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from occo.cli import main
from occo.data import DataError, find_pairs, load_array, rgb_to_ycbcr, save_png, to_float
from occo.fuse import fuse_folder
from occo.nn import ArchConfig, build_model, save_checkpoint

REPO = Path(__file__).resolve().parents[1]
CFG = ArchConfig(widths=(8, 8, 8, 8), heads=(1, 1, 1, 1))
SIZES = {"a": (40, 48), "b": (40, 48), "c": (32, 56)}  # b: grey visible image


def _pairs(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    for id_, (h, w) in SIZES.items():
        save_png(folder / "ir" / f"{id_}.png", rng.integers(0, 256, (h, w), dtype=np.uint8))
        shape = (h, w) if id_ == "b" else (h, w, 3)
        save_png(folder / "vi" / f"{id_}.png", rng.integers(60, 200, shape, dtype=np.uint8))
    return folder


@pytest.fixture
def model() -> torch.nn.Module:
    return build_model(CFG, seed=0).eval()


def test_fuse_folder_writes_colour_pngs_of_the_source_size(tmp_path, model):
    src = _pairs(tmp_path / "src")
    out = tmp_path / "out"
    written = fuse_folder(model, find_pairs(src / "ir", src / "vi"), out, device="cpu", batch_size=2)
    assert sorted(p.name for p in written) == ["a.png", "b.png", "c.png"]
    for id_, (h, w) in SIZES.items():
        arr = load_array(out / f"{id_}.png")
        assert arr.dtype == np.uint8 and arr.shape == ((h, w) if id_ == "b" else (h, w, 3))
    fused = rgb_to_ycbcr(to_float(load_array(out / "a.png")))
    vi = rgb_to_ycbcr(to_float(load_array(src / "vi/a.png")))
    assert (fused[1:] - vi[1:]).abs().mean() < 0.02  # chroma carried over from the visible image


def test_fuse_folder_skips_existing_outputs(tmp_path, model, caplog):
    src = _pairs(tmp_path / "src")
    out = tmp_path / "out"
    pairs = find_pairs(src / "ir", src / "vi")
    save_png(out / "a.png", np.zeros((2, 2), np.uint8))
    with caplog.at_level(logging.INFO, logger="occo.fuse"):
        written = fuse_folder(model, pairs, out, device="cpu")
    assert sorted(p.name for p in written) == ["b.png", "c.png"] and "1 of 3 outputs exist" in caplog.text
    assert load_array(out / "a.png").shape == (2, 2)
    assert fuse_folder(model, pairs, out, device="cpu") == []
    assert len(fuse_folder(model, pairs, out, device="cpu", overwrite=True)) == 3


def test_batching_does_not_change_the_result(tmp_path, model):
    src = _pairs(tmp_path / "src")
    pairs = find_pairs(src / "ir", src / "vi")
    fuse_folder(model, pairs, tmp_path / "one", device="cpu", batch_size=1)
    fuse_folder(model, pairs, tmp_path / "two", device="cpu", batch_size=2)
    for id_ in SIZES:
        diff = load_array(tmp_path / "one" / f"{id_}.png").astype(int) - load_array(tmp_path / "two" / f"{id_}.png")
        assert np.abs(diff).max() <= 1


def test_occo_fuse_cli_folders_and_single_pair(tmp_path, model):
    src = _pairs(tmp_path / "src")
    ckpt = save_checkpoint(tmp_path / "m.pt", model, CFG)
    out = tmp_path / "fused"
    main(["fuse", "--ir", str(src / "ir"), "--vi", str(src / "vi"), "--out", str(out), "--checkpoint", str(ckpt),
          "--device", "cpu", "--batch-size", "2"])
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "c.png"]
    single = tmp_path / "single" / "x.png"
    main(["fuse", "--ir", str(src / "ir/c.png"), "--vi", str(src / "vi/c.png"), "--out", str(single),
          "--checkpoint", str(ckpt), "--device", "cpu"])
    assert np.array_equal(load_array(single), load_array(out / "c.png"))
    with pytest.raises(SystemExit, match="both be folders or both be image files"):
        main(["fuse", "--ir", str(src / "ir"), "--vi", str(src / "vi/c.png"), "--out", str(out),
              "--checkpoint", str(ckpt)])
    with pytest.raises(SystemExit, match="checkpoint not found"):
        main(["fuse", "--ir", str(src / "ir"), "--vi", str(src / "vi"), "--out", str(out),
              "--checkpoint", str(tmp_path / "missing.pt")])


def _stage_workspace(root: Path, model: torch.nn.Module) -> ModuleType:
    """The fuse stage module, with a 3-pair dataset `tiny/test` and models/occo.pt under ``root``."""
    spec = importlib.util.spec_from_file_location("occo_test_stage_fuse", REPO / "stages" / "fuse.py")
    stage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stage)
    _pairs(root / "data/raw/tiny/test")
    (root / "data/raw/INDEX.json").write_text(json.dumps({"tiny": {"test": 3}}))
    save_checkpoint(root / "models/occo.pt", model, CFG)
    return stage


def test_fuse_stage_fuses_listed_splits_and_warns_on_missing(tmp_path, model, caplog):
    stage = _stage_workspace(tmp_path, model)
    params = {"datasets": ["tiny/test", "tiny/train", "FMB/test"], "device": "cpu", "batch_size": 2}
    with caplog.at_level(logging.WARNING, logger="stages.fuse"):
        folders = stage.run(params, tmp_path)
    assert folders == [tmp_path / "data/fused/occo/tiny/test"]
    assert sorted(p.name for p in folders[0].iterdir()) == ["a.png", "b.png", "c.png"]
    assert "skipping tiny/train" in caplog.text and "skipping FMB/test" in caplog.text
    with pytest.raises(DataError, match="<dataset>/<split>"):
        stage.run({"datasets": ["tiny"], "device": "cpu"}, tmp_path)


def test_fuse_stage_extra_checkpoint_is_one_more_method(tmp_path, model):
    stage = _stage_workspace(tmp_path, model)
    save_checkpoint(tmp_path / "models/public.pt", model, CFG)
    params = {"datasets": ["tiny/test"], "device": "cpu", "extra_checkpoints": {"OCCO-public": "models/public.pt"}}
    folders = stage.run(params, tmp_path)
    assert folders == [tmp_path / "data/fused/occo/tiny/test", tmp_path / "data/fused/OCCO-public/tiny/test"]
    for a, b in zip(*(sorted(f.iterdir()) for f in folders)):
        assert np.array_equal(load_array(a), load_array(b))
