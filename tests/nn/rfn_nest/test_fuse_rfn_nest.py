"""Fusing with an RFN-Nest checkpoint: folders, tiles past the memory budget, RFN-Nest's four-part split, the stage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from occo.config import Arch, Fuse
from occo.data import make_synthetic
from occo.data.io import read_image
from occo.data.pairs import find_pairs
from occo.nn import build_network, network, save_checkpoint
from occo.nn.fuse import fuse_folder, run_fuse
from occo.nn.rfn_nest.tiling import nest_halo
from occo.nn.split import raw_in_parts

NARROW = Arch(name="rfn_nest", nest_widths=[4, 6, 8, 8])


def _grey(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L")).astype(int)


def _open_model() -> torch.nn.Module:
    """A narrow network with positive biases: its ReLUs stay open, so its output varies over the image."""
    model = build_network(NARROW, seed=0)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 1:
                p.uniform_(0.05, 0.3, generator=torch.Generator().manual_seed(p.numel()))
    return model


def test_tiles_and_the_four_part_split(tmp_path):
    src = tmp_path / "src"
    make_synthetic(src, n_train=0, n_test=2, height=90, width=140, seed=2)
    (src / "test/vi_grey").mkdir()
    for path in sorted((src / "test/vi").glob("*.png")):  # grey visible images: the PNG holds the fused Y itself
        Image.open(path).convert("L").save(src / "test/vi_grey" / path.name)
    pairs = find_pairs(ir=src / "test/ir", vi=src / "test/vi_grey")
    model = _open_model()
    net = network(NARROW)
    common = {"checkpoint_sha256": "a" * 64, "device": "cpu"}
    fuse_folder(model, pairs, tmp_path / "whole", **common)
    tile_budget = (8 + 2 * nest_halo(NARROW)) ** 2 * net.bytes_per_pixel(NARROW)  # one 8-pixel core a window
    fuse_folder(model, pairs, tmp_path / "tiles", memory_budget_bytes=tile_budget, **common)
    fuse_folder(model, pairs, tmp_path / "split", split_above=128, **common)
    for p in pairs:
        whole, tiles = _grey(tmp_path / "whole" / f"{p.id}.png"), _grey(tmp_path / "tiles" / f"{p.id}.png")
        assert np.abs(whole - tiles).max() <= 1  # equal raw outputs up to float rounding, then truncated
        raw = raw_in_parts(
            lambda a, b: net.raw(model, ir=a, vi=b), ir=read_image(p.ir)[None], vi=read_image(p.vi)[None]
        )
        want = (net.finish(raw)[0, 0] * 255).round().int().numpy()
        split = _grey(tmp_path / "split" / f"{p.id}.png")
        assert split.shape == (90, 140) and np.array_equal(split, want) and want.std() > 1
        assert np.abs(split - whole).max() > 1  # four parts are not the whole image


def test_fuse_stage_fuses_with_an_rfn_nest_checkpoint(tmp_path):
    root = tmp_path / "repo"
    make_synthetic(root / "data/raw/synthetic", n_train=0, n_test=2, height=48, width=64, seed=0)
    (root / "data/raw/INDEX.json").write_text(json.dumps({"synthetic": {"test": 2}}))
    save_checkpoint(root / "models/occo.pt", build_network(NARROW, seed=0), NARROW)
    cfg = Fuse(datasets=["synthetic/test"], device="cpu", batch_size=2)
    (folder,) = run_fuse(cfg, root)
    fused = sorted(folder.glob("*.png"))
    assert [p.name for p in fused] == ["syn_000.png", "syn_001.png"]
    assert Image.open(fused[0]).size == (64, 48) and torch.is_tensor(read_image(fused[0]))
