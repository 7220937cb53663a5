"""The training loop (occo.train.loop) on CPU with a tiny network and a random VGG."""

from __future__ import annotations

import copy
import csv
import logging
from pathlib import Path

import pytest
import torch
import yaml

from occo.data import make_synthetic
from occo.losses import NonFiniteLossError, OCCOLoss
from occo.nn import load_model
from occo.train import loop, train

REPO = Path(__file__).resolve().parents[2]


def _params(**train_overrides) -> dict:
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params["arch"].update(widths=[8, 8, 8, 8], heads=[1, 1, 1, 1])
    params["train"].update(
        dataset="synthetic", split="train", crop=32, batch_size=12, epochs=100, vgg_random_init=True,
        vgg_weights=None, num_workers=0, checkpoint_every=2, log_every=1, max_steps=None,
    )
    params["train"].update(train_overrides)
    return params


def _root(tmp_path: Path, name: str, n_train: int = 8) -> Path:
    root = tmp_path / name
    make_synthetic(root / "data/raw/synthetic", n_train=n_train, n_test=1, height=48, width=64, seed=0)
    return root


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def test_resumed_run_reaches_the_same_weights(tmp_path):
    params = _params()
    straight = train(params, _root(tmp_path, "a"), max_steps=4)
    root = _root(tmp_path, "b")
    train(params, root, max_steps=2)
    assert torch.load(root / loop.CHECKPOINT, weights_only=True)["step"] == 2
    resumed = train(params, root, max_steps=4)
    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    model, cfg = load_model(resumed)
    assert cfg.widths == (8, 8, 8, 8) and not model.training
    ckpt = torch.load(root / loop.CHECKPOINT, weights_only=True)
    assert ckpt["step"] == 4 and {"optimizer", "rng", "fingerprint"} <= ckpt.keys()
    rows = list(csv.DictReader(open(root / loop.LIVE_DIR / "plots/metrics/train/total.tsv"), delimiter="\t"))
    assert [int(r["step"]) for r in rows][-2:] == [3, 4]
    assert (root / loop.LIVE_DIR / "plots/metrics/train/lr.tsv").is_file()


def test_checkpoint_of_other_params_is_not_resumed(tmp_path, caplog):
    root = _root(tmp_path, "c")
    train(_params(), root, max_steps=1)
    with caplog.at_level(logging.WARNING, logger="occo.train.loop"):
        train(_params(lr=1e-3), root, max_steps=1)
    assert "other params" in caplog.text


def test_tiny_model_overfits_two_pairs(tmp_path):
    root = tmp_path / "d"  # 32x32 images, 32x32 crops, no flips: every step sees the same two pairs
    make_synthetic(root / "data/raw/synthetic", n_train=2, n_test=1, height=32, width=32, seed=1)
    params = _params(lr=2e-3, log_every=5, flip=False)
    params["omega6"] = 0  # the pixel loss alone: a random VGG's contrastive terms are noise
    train(params, root, max_steps=30)
    rows = list(csv.DictReader(open(root / loop.LIVE_DIR / "plots/metrics/train/total.tsv"), delimiter="\t"))
    losses = [float(r["total"]) for r in rows]  # means over 5 steps
    assert len(losses) == 6 and losses == sorted(losses, reverse=True) and losses[-1] < 0.75 * losses[0], losses


class _Flaky(torch.nn.Module):
    """Raises NonFiniteLossError on the calls listed in ``bad``, else the real loss."""

    def __init__(self, inner: OCCOLoss, bad: set[int]) -> None:
        super().__init__()
        self.inner, self.bad, self.calls = inner, bad, 0

    def forward(self, *args):
        self.calls += 1
        if self.calls in self.bad:
            raise NonFiniteLossError("non-finite loss terms: total")
        return self.inner(*args)


def test_non_finite_batches_are_skipped_then_stop(tmp_path, monkeypatch, caplog):
    real = OCCOLoss.from_params

    def flaky(bad):
        monkeypatch.setattr(loop.OCCOLoss, "from_params", lambda params: _Flaky(real(params), bad))

    flaky({2, 3})
    root = _root(tmp_path, "e")
    with caplog.at_level(logging.WARNING, logger="occo.train.loop"):
        train(_params(), root, max_steps=4)
    assert "step 1 skipped (1 in a row)" in caplog.text and "step 2 skipped (2 in a row)" in caplog.text
    assert torch.load(root / loop.CHECKPOINT, weights_only=True)["step"] == 4

    flaky(set(range(1, 100)))
    with pytest.raises(RuntimeError, match="3 consecutive non-finite"):
        train(_params(max_nonfinite=3), _root(tmp_path, "f"), max_steps=10)


def test_fingerprint_ignores_run_length_only():
    params = _params()
    longer = copy.deepcopy(params)
    longer["train"].update(epochs=5, max_steps=7, checkpoint_every=9)
    assert loop.run_fingerprint(params) == loop.run_fingerprint(longer)
    longer["omega6"] = 100
    assert loop.run_fingerprint(params) != loop.run_fingerprint(longer)
