"""The training routines (occo.train.routine): ours and the authors' train_ep, precision and flips."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from occo.config import Params, override
from occo.data import DataError, make_synthetic, save_png
from occo.nn import load_model
from occo.train import loop, train
from occo.train.data import find_training_pairs, load_sample, minmax_float, pairs_with_objects
from occo.train.routine import ROUTINES, routine_of, training_autocast, training_flip, training_precision

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def _train(**changes: object):
    return override(Params(), {f"train.{k}" if "." not in k else k: v for k, v in changes.items()}).train


def test_auto_precision_and_flips_follow_the_routine():
    fixed, official = _train(), _train(compat="official")
    assert (training_precision(fixed, CUDA), training_precision(fixed, CPU)) == ("bf16", "fp32")
    assert (training_precision(official, CUDA), training_precision(official, CPU)) == ("fp32", "fp32")
    assert training_flip(fixed) and not training_flip(official)
    assert training_precision(_train(precision="bf16"), CPU) == "bf16"  # asked for: the CPU runs it too
    assert training_precision(_train(compat="official", precision="bf16"), CUDA) == "bf16"  # overrides the routine
    assert training_flip(_train(compat="official", flip=True))
    assert routine_of(override(Params(), {"compat": "official"}).train) is ROUTINES["official"]


def test_bf16_autocasts_on_the_cpu_when_asked():
    net = torch.nn.Linear(4, 4)
    with training_autocast(_train(precision="bf16"), CPU):
        assert net(torch.rand(2, 4)).dtype == torch.bfloat16
    with training_autocast(_train(), CPU):  # auto: fp32 on the CPU
        assert net(torch.rand(2, 4)).dtype == torch.float32


def _pair_set(root, masks: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    base = root / "data/raw/tiny/train"
    g = np.random.default_rng(0)
    for name, (ir_mask, vi_mask) in masks.items():
        save_png(base / f"ir/{name}.png", g.integers(40, 200, (40, 40), dtype=np.uint8))
        save_png(base / f"vi/{name}.png", g.integers(10, 120, (40, 40, 3), dtype=np.uint8))
        save_png(base / f"masks/ir/{name}.png", ir_mask)
        save_png(base / f"masks/vi/{name}.png", vi_mask)


def test_official_scaling_stretches_each_file_and_skips_pairs_without_objects(tmp_path, caplog):
    empty, obj = np.zeros((40, 40), np.uint8), np.zeros((40, 40), np.uint8)
    obj[10:20, 10:20] = 255
    _pair_set(tmp_path, {"a": (obj, empty), "b": (empty, empty)})
    pairs = find_training_pairs(tmp_path, "tiny", "train")
    with caplog.at_level(logging.INFO, logger="occo.train.data"):
        assert [p.id for p in pairs_with_objects(pairs)] == ["a"]
    assert "1 of 2 pairs have no mask pixel" in caplog.text
    ours, theirs = load_sample(pairs[0]), load_sample(pairs[0], "minmax")
    assert 40 / 255 <= ours[0].min() and ours[0].max() <= 200 / 255  # the file's range, as at inference
    assert theirs[0].min() == 0 and theirs[0].max() == 1  # stretched, as get_test_image
    assert theirs[1].min() >= 0 and theirs[1].max() <= 1 and torch.equal(ours[2:], theirs[2:])
    assert torch.equal(minmax_float(np.full((3, 3), 7, np.uint8)), torch.zeros(1, 3, 3))
    with pytest.raises(DataError, match="none of the 1 training pairs has a mask pixel"):
        pairs_with_objects([pairs[1]])


def test_compat_official_trains_the_authors_routine(tmp_path, caplog, monkeypatch):
    """One step under `compat: official`: the official network and loss, fp32, the output min-maxed over the
    whole batch (one min and max for the 12 crops), no flips, inputs stretched per file."""
    root = tmp_path / "run"
    make_synthetic(root / "data/raw/synthetic", n_train=8, n_test=1, height=48, width=64, seed=0)
    changes = {"dataset": "synthetic", "crop": 32, "vgg_random_init": True, "num_workers": 0, "max_steps": 1}
    params = override(
        Params(),
        {"compat": "official", "arch.widths": [8, 8, 8, 8], "arch.heads": [1, 1, 1, 1]}
        | {f"train.{k}": v for k, v in changes.items()},
    )
    normalised = []
    real = loop.normalise_output
    monkeypatch.setattr(
        loop, "normalise_output", lambda x, per_image: normalised.append(per_image) or real(x, per_image)
    )
    with caplog.at_level(logging.INFO, logger="occo.train.loop"):
        weights = train(params, root, device="cpu")
    assert normalised == [False] and "(official routine, fp32)" in caplog.text
    model, arch = load_model(weights)
    assert arch.compat == "official"
