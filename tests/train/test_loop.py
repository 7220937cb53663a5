"""The training loop (occo.train.loop) on CPU with a tiny network and a random VGG."""

from __future__ import annotations

import csv
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from occo.config import Params, Train, as_dict, load_params, override
from occo.data import load_array, make_synthetic, save_png
from occo.losses import NonFiniteLossError, OCCOLoss
from occo.nn import load_model
from occo.nn.checkpoint import CheckpointError
from occo.pipeline.resume import digest_value
from occo.train import loop, train
from occo.train.data import find_training_pairs
from support import REPO


def _params(**train_overrides) -> Params:
    train = {
        "dataset": "synthetic",
        "split": "train",
        "crop": 32,
        "batch_size": 12,
        "epochs": 100,
        "vgg_random_init": True,
        "vgg_weights": None,
        "num_workers": 0,
        "checkpoint_every": 2,
        "log_every": 1,
        "max_steps": None,
        **train_overrides,
    }
    changes = {"arch.widths": [8, 8, 8, 8], "arch.heads": [1, 1, 1, 1], **{f"train.{k}": v for k, v in train.items()}}
    return override(load_params(REPO / "params.yaml"), changes)


def _root(tmp_path: Path, name: str, n_train: int = 8) -> Path:
    root = tmp_path / name
    make_synthetic(root / "data/raw/synthetic", n_train=n_train, n_test=1, height=48, width=64, seed=0)
    return root


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


@pytest.mark.slow
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
    assert cfg.widths == [8, 8, 8, 8] and not model.training
    ckpt = torch.load(root / loop.CHECKPOINT, weights_only=True)
    assert ckpt["step"] == 4 and {"optimizer", "rng", "fingerprint"} <= ckpt.keys()
    rows = list(csv.DictReader(open(root / loop.LIVE_DIR / "plots/metrics/train/total.tsv"), delimiter="\t"))
    assert [int(r["step"]) for r in rows][-2:] == [3, 4]
    assert (root / loop.LIVE_DIR / "plots/metrics/train/lr.tsv").is_file()
    summary = json.loads((root / loop.LIVE_DIR / "metrics.json").read_text())
    assert summary["pairs"] == len(find_training_pairs(root, "synthetic", "train")) and summary["step"] == 4


def test_checkpoint_of_other_params_is_not_resumed(tmp_path, caplog):
    root = _root(tmp_path, "c")
    train(_params(), root, max_steps=1)
    with caplog.at_level(logging.WARNING, logger="occo.train.loop"):
        train(_params(lr=1e-3), root, max_steps=1)
    assert "params changed (images, masks unchanged)" in caplog.text


def _rows(root: Path, name: str = "total") -> list[int]:
    with open(root / loop.LIVE_DIR / f"plots/metrics/train/{name}.tsv") as f:
        return [int(r["step"]) for r in csv.DictReader(f, delimiter="\t")]


def _change(root: Path, kind: str) -> None:
    """Rewrite one training input of pair syn_001: its visible image, or its infrared mask."""
    split = root / "data/raw/synthetic/train"
    path = split / ("vi/syn_001.png" if kind == "images" else "masks/ir/syn_001.png")
    save_png(path, 255 - load_array(path))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["images", "masks"])
def test_finished_checkpoint_is_not_reused_when_its_inputs_change(tmp_path, caplog, kind):
    """New masks (`dvc exp run -S masks.prompt=...`) or images: a finished run trains again, not 'step N of N'."""
    params = _params()
    root = _root(tmp_path, "old")
    old = _weights(train(params, root, max_steps=2))
    _change(root, kind)
    with caplog.at_level(logging.INFO, logger="occo.train.loop"):
        new = _weights(train(params, root, max_steps=2))
    other = "masks" if kind == "images" else "images"
    assert f"{kind} changed (params, {other} unchanged)" in caplog.text
    assert "resuming" not in caplog.text
    fresh = _root(tmp_path, "fresh")  # a first run on the changed inputs
    _change(fresh, kind)
    expected = _weights(train(params, fresh, max_steps=2))
    assert all(torch.equal(new[k], expected[k]) for k in expected)
    assert not all(torch.equal(new[k], old[k]) for k in old)
    assert _rows(root) == [1, 2]  # the fresh run's curve only


def test_same_bytes_with_new_timestamps_still_resume(tmp_path, caplog):
    """A DVC checkout or a copy changes mtimes, not data: the checkpoint is still this run's."""
    root = _root(tmp_path, "touched")
    train(_params(), root, max_steps=2)
    for path in (root / "data/raw").rglob("*.png"):
        os.utime(path, ns=(1, 1))
    with caplog.at_level(logging.INFO, logger="occo.train.loop"):
        train(_params(), root, max_steps=3)
    assert "resuming from" in caplog.text and "training from scratch" not in caplog.text


def test_checkpoint_without_input_fingerprint_is_not_resumed(tmp_path, caplog):
    root = _root(tmp_path, "legacy")
    train(_params(), root, max_steps=1)
    ckpt = torch.load(root / loop.CHECKPOINT, weights_only=True)
    torch.save({**ckpt, "fingerprint": loop.run_fingerprint(_params())}, root / loop.CHECKPOINT)  # params only
    with caplog.at_level(logging.WARNING, logger="occo.train.loop"):
        train(_params(), root, max_steps=1)
    assert "records no fingerprint of its params and inputs" in caplog.text


class _Interrupt(Exception):
    pass


class _LossAt(torch.nn.Module):
    """The real loss, except on call ``at``: ``nan_grad`` adds sqrt(0·fused) (value 0, gradient NaN),
    else the call raises _Interrupt (a run killed mid-step)."""

    def __init__(self, inner: OCCOLoss, at: int, nan_grad: bool) -> None:
        super().__init__()
        self.inner, self.at, self.nan_grad, self.calls = inner, at, nan_grad, 0

    def forward(self, fused, **inputs):
        self.calls += 1
        if self.calls == self.at and not self.nan_grad:
            raise _Interrupt
        terms = self.inner(fused, **inputs)
        if self.calls == self.at:
            terms["total"] = terms["total"] + torch.sqrt((fused * 0).sum())
        return terms


def _loss_at(monkeypatch, at: int, *, nan_grad: bool) -> None:
    real = OCCOLoss.from_config
    monkeypatch.setattr(OCCOLoss, "from_config", lambda cfg: _LossAt(real(cfg), at, nan_grad))


@pytest.mark.parametrize("every, kept", [(2, 2), (10, None)])
def test_diverging_run_keeps_the_last_finite_checkpoint(tmp_path, monkeypatch, every, kept):
    """The 4th update makes the weights NaN: the run stops at once, naming the step and the loss terms;
    nothing non-finite reaches last.pt or occo.pt (every resume would fail the same way)."""
    _loss_at(monkeypatch, 4, nan_grad=True)
    root = _root(tmp_path, "nan")
    with pytest.raises(loop.TrainingStopped) as err:
        train(_params(checkpoint_every=every), root, max_steps=6)
    message = str(err.value)
    assert "\n" not in message and message.startswith("step 4: ") and "statistics are NaN/inf" in message
    assert "last loss terms: " in message and "total=" in message and "lower train.lr" in message
    assert not (root / loop.FINAL).exists()
    assert [p.name for p in (root / "models").rglob(".*")] == []  # no temp file left
    if kept is None:
        assert "no checkpoint was written" in message and not (root / loop.CHECKPOINT).exists()
    else:
        assert f"{root / loop.CHECKPOINT} resumes at step {kept}" in message
        ckpt = torch.load(root / loop.CHECKPOINT, weights_only=True)
        assert ckpt["step"] == kept and all(v.isfinite().all() for v in ckpt["state_dict"].values())


def test_checkpoint_with_nan_weights_is_not_resumed(tmp_path):
    """A last.pt with NaN weights (written by hand here) would fail every resume the same way."""
    root = _root(tmp_path, "poisoned")
    train(_params(), root, max_steps=2)
    ckpt = torch.load(root / loop.CHECKPOINT, weights_only=True)
    next(iter(ckpt["state_dict"].values())).fill_(float("nan"))
    torch.save(ckpt, root / loop.CHECKPOINT)
    with pytest.raises(CheckpointError, match=r"last\.pt holds NaN/inf weights \(step 2\)"):
        train(_params(), root, max_steps=4)


def test_resume_logs_each_step_once(tmp_path, monkeypatch):
    """Killed during step 4 with the checkpoint at step 2: the rows of step 3 are not logged twice."""
    root = _root(tmp_path, "killed")
    _loss_at(monkeypatch, 4, nan_grad=False)
    with pytest.raises(_Interrupt):
        train(_params(), root, max_steps=5)
    assert _rows(root) == [1, 2, 3] and torch.load(root / loop.CHECKPOINT, weights_only=True)["step"] == 2
    monkeypatch.undo()
    train(_params(), root, max_steps=5)
    assert _rows(root) == [1, 2, 3, 4, 5] and _rows(root, "lr") == [1, 2, 3, 4, 5]


def test_temp_files_of_a_killed_write_are_removed(tmp_path):
    root = _root(tmp_path, "tmp")
    stale = [
        root / "models/checkpoints/.last.pt.tmp-0123456789ab",
        root / "models/checkpoints/.last.pt.x1y2z3.tmp",
        root / "models/.occo.pt.tmp-ba9876543210",
    ]
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half a checkpoint")
    train(_params(), root, max_steps=1)
    assert not any(p.exists() for p in stale)
    assert sorted(p.name for p in (root / "models").rglob("*")) == ["checkpoints", "last.pt", "occo.pt"]


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 cut short"])
def test_unreadable_checkpoint_is_one_line_from_the_stage(tmp_path, content):
    root = _root(tmp_path, "broken")
    (root / loop.CHECKPOINT).parent.mkdir(parents=True)
    (root / loop.CHECKPOINT).write_bytes(content)
    with pytest.raises(CheckpointError, match=r"last\.pt is (empty \(0 bytes|truncated or corrupt).*delete it"):
        train(_params(), root, max_steps=1)
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(as_dict(_params(max_steps=1))), encoding="utf-8")
    stage = [str(REPO / "stages/train.py"), "--params", str(params_file), "--root", str(root), "--device", "cpu"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run([sys.executable, *stage], capture_output=True, text=True, env=env)
    last = run.stderr.strip().splitlines()[-1]
    assert run.returncode == 1 and last.startswith("train: ") and str(root / loop.CHECKPOINT) in last, run.stderr
    assert "delete it to train from scratch" in last and "Traceback" not in run.stderr
    assert (root / loop.CHECKPOINT).read_bytes() == content  # nothing lost


@pytest.mark.slow
def test_tiny_model_overfits_two_pairs(tmp_path):
    root = tmp_path / "d"  # 32x32 images, 32x32 crops, no flips: every step sees the same two pairs
    make_synthetic(root / "data/raw/synthetic", n_train=2, n_test=1, height=32, width=32, seed=1)
    params = override(_params(lr=2e-3, log_every=5, flip=False), {"omega6": 0})  # a random VGG's contrast is noise
    train(params, root, max_steps=30)
    rows = list(csv.DictReader(open(root / loop.LIVE_DIR / "plots/metrics/train/total.tsv"), delimiter="\t"))
    losses = [float(r["total"]) for r in rows]  # means over 5 steps
    assert len(losses) == 6 and losses == sorted(losses, reverse=True) and losses[-1] < 0.75 * losses[0], losses


class _Flaky(torch.nn.Module):
    """Raises NonFiniteLossError on the calls listed in ``bad``, else the real loss."""

    def __init__(self, inner: OCCOLoss, bad: set[int]) -> None:
        super().__init__()
        self.inner, self.bad, self.calls = inner, bad, 0

    def forward(self, fused, **inputs):
        self.calls += 1
        if self.calls in self.bad:
            raise NonFiniteLossError("non-finite loss terms: total")
        return self.inner(fused, **inputs)


def test_non_finite_batches_are_skipped_then_stop(tmp_path, monkeypatch, caplog):
    real = OCCOLoss.from_config

    def flaky(bad):
        monkeypatch.setattr(OCCOLoss, "from_config", lambda cfg: _Flaky(real(cfg), bad))

    flaky({2, 3})
    root = _root(tmp_path, "e")
    with caplog.at_level(logging.WARNING, logger="occo.train.loop"):
        train(_params(), root, max_steps=4)
    assert "step 1 skipped (1 in a row)" in caplog.text and "step 2 skipped (2 in a row)" in caplog.text
    assert torch.load(root / loop.CHECKPOINT, weights_only=True)["step"] == 4

    flaky(set(range(1, 100)))
    with pytest.raises(loop.TrainingStopped, match="^step 2: 3 consecutive non-finite losses"):
        train(_params(max_nonfinite=3), _root(tmp_path, "f"), max_steps=10)


def test_fingerprint_ignores_run_length_only():
    params = _params()
    longer = override(params, {"train.epochs": 5, "train.max_steps": 7, "train.checkpoint_every": 9})
    assert loop.run_fingerprint(params) == loop.run_fingerprint(longer)
    assert loop.run_fingerprint(params) != loop.run_fingerprint(override(longer, {"omega6": 100}))
    assert loop.NOT_FINGERPRINTED < Train.model_fields.keys()  # names of train params


def test_fingerprint_digests_the_params_that_shape_the_optimisation():
    cfg = _params()
    params = as_dict(cfg)
    relevant = {k: params[k] for k in ("omega1", "omega2", "omega3", "omega4", "omega5", "omega6", "alpha", "beta")}
    relevant |= {k: params[k] for k in ("arch", "loss")}
    relevant["ablation"] = params["ablation"]
    run_length = {"epochs", "max_steps", "checkpoint_every", "log_every", "num_workers", "compile"}
    relevant["train"] = {k: v for k, v in params["train"].items() if k not in run_length}
    assert loop.run_fingerprint(cfg) == digest_value(relevant)[:16]


def test_a_target_below_the_checkpoint_starts_over(tmp_path, caplog):
    """Lowering train.max_steps (or epochs) after a finished run used to 'resume' it (steps 2..1) and write the
    2-step model as models/occo.pt while dvc.lock recorded 1."""
    params = _params()
    root = _root(tmp_path, "lowered")
    train(params, root, max_steps=2)
    with caplog.at_level(logging.WARNING, logger="occo.train.loop"):
        lowered = train(params, root, max_steps=1)
    assert "holds step 2, beyond this run's last step 1" in caplog.text
    assert torch.load(lowered, weights_only=True)["step"] == 1
    assert torch.load(root / loop.CHECKPOINT, weights_only=True)["step"] == 1
    expected = _weights(train(params, _root(tmp_path, "one"), max_steps=1))
    assert all(torch.equal(_weights(lowered)[k], expected[k]) for k in expected)
    assert _rows(root) == [1]


def test_a_reused_finished_checkpoint_keeps_the_runs_metrics(tmp_path):
    """DVC deletes dvclive/train/metrics.json (not persisted) before re-running train; reusing the finished
    checkpoint (a code edit, a same-bytes re-import, a damaged occo.pt) then wrote {"step": 0}."""
    import json

    params = _params()
    root = _root(tmp_path, "reused")
    train(params, root, max_steps=2)
    metrics = root / loop.LIVE_DIR / "metrics.json"
    before = json.loads(metrics.read_text())
    assert before["step"] == 2 and "total" in before["train"]
    metrics.unlink()
    (root / loop.FINAL).unlink()
    train(params, root, max_steps=2)
    assert json.loads(metrics.read_text()) == before
    assert _rows(root) == [1, 2]


def test_a_damaged_history_does_not_block_resuming(tmp_path):
    """A history file left empty (a kill or a full disk as dvclive opened it) used to stop the resume with 'not
    enough values to unpack'; a row cut short is dropped too."""
    params = _params()
    root = _root(tmp_path, "damaged")
    train(params, root, max_steps=2)
    history = root / loop.LIVE_DIR / "plots/metrics/train"
    (history / "total.tsv").write_bytes(b"")
    (history / "lr.tsv").write_bytes((history / "lr.tsv").read_bytes() + b"3")  # step 3's row, cut short
    train(params, root, max_steps=3)
    assert _rows(root, "lr") == [1, 2, 3]
    assert _rows(root) == [3]  # the empty file's steps are lost; it starts again with a header
