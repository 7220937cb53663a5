"""The resumable mask loop (occo.masks.generate) with stand-in models: which pairs are made again."""

from __future__ import annotations

import logging

import numpy as np
import torch

from occo.data import find_pairs, load_array, save_png
from occo.masks.detector import Detections
from occo.masks.generate import generate_masks

SETTINGS = {"detector": "stand-in", "prompt": "bright things", "box_threshold": 0.5}


class _Bright:
    """A detector and SAM stand-in: one box over the whole image; its mask is where the image is bright."""

    calls = 0
    device = torch.device("cpu")

    def detect(self, images: list[np.ndarray]) -> list[Detections]:
        _Bright.calls += 1
        return [Detections(np.array([[0, 0, im.shape[1], im.shape[0]]], float), np.ones(1), ["x"]) for im in images]

    def masks(self, images: list[np.ndarray], boxes: list[np.ndarray]) -> list[np.ndarray]:
        return [im.mean(axis=2) > 127 for im in images]


def _models() -> tuple[_Bright, _Bright]:
    return _Bright(), _Bright()


def _split(root, ids=("a", "b")):
    rng = np.random.default_rng(0)
    for id_ in ids:
        for kind in ("ir", "vi"):
            save_png(root / kind / f"{id_}.png", rng.integers(0, 256, (16, 24), dtype=np.uint8))
    return find_pairs(ir=root / "ir", vi=root / "vi")


def test_masks_of_images_changed_under_the_same_ids_are_made_again(tmp_path, caplog):
    """Swapped or regenerated images under the same ids (`-S download.synthetic.seed=1`, a new FMB copy) used to
    keep their old masks: "2 of 2 pairs already done, skipped"."""
    pairs = _split(tmp_path / "raw")
    out = tmp_path / "masks"
    assert generate_masks(pairs, out, _models, settings=SETTINGS, batch_size=1) == 2
    assert generate_masks(pairs, out, _models, settings=SETTINGS, batch_size=1) == 0  # resumable
    image = load_array(pairs[1].vi)
    save_png(pairs[1].vi, 255 - image)  # new pixels, same id
    with caplog.at_level(logging.INFO, logger="occo.masks.generate"):
        assert generate_masks(pairs, out, _models, settings=SETTINGS, batch_size=1) == 1
    assert np.array_equal(load_array(out / "vi/b.png") > 0, (255 - image) > 127)
    assert (
        "1 of 2 pairs already done" in caplog.text
        and "1 pairs made again: their images (or the masks they import) changed" in caplog.text
    )


def test_a_pair_cut_short_while_being_made_again_is_not_taken_as_done(tmp_path):
    """A redo killed after writing some files must not pass for done if the images change back."""
    pairs = _split(tmp_path / "raw", ids=("a",))
    out = tmp_path / "masks"
    generate_masks(pairs, out, _models, settings=SETTINGS, batch_size=1)
    old = {p.name: p.read_bytes() for p in (out / "vi").iterdir()}
    (out / "identity/a.json").unlink()  # what a redo does first, then it is killed
    assert generate_masks(pairs, out, _models, settings=SETTINGS, batch_size=1) == 1
    assert {p.name: p.read_bytes() for p in (out / "vi").iterdir()} == old
