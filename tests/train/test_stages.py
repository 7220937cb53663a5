"""RFN-Nest in the train stage (occo.train.stages): its two stages, the fusion stage on a given auto-encoder,
the published weights, with L_RFN and L_RFN + β·L_CCL, on the CPU with a narrow network and a random VGG."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from rfn_nest_layout import autoencoder_layout, make_state, rfn_layout

from occo.config import Params, load_params, override
from occo.data import make_synthetic
from occo.nn import load_model
from occo.nn.rfn_nest.published import AUTOENCODER_FILE, RFN_FILE, published_model
from occo.pipeline.inputs import train_weight_needs
from occo.train import loop, train
from support import REPO

WIDTHS = (4, 6, 8, 8)


def _params(**changes) -> Params:
    base = {
        "arch.name": "rfn_nest",
        "arch.nest_widths": list(WIDTHS),
        "loss.terms": ["rfn", "ccl"],
        "train.dataset": "synthetic",
        "train.crop": 32,
        "train.epochs": 100,
        "train.vgg_random_init": True,
        "train.num_workers": 0,
        "train.checkpoint_every": 2,
        "train.log_every": 1,
        "train.stage": "both",
        "train.autoencoder_epochs": 2,
    }
    return override(load_params(REPO / "params.yaml"), base | changes)


def _root(tmp_path: Path, name: str) -> Path:
    root = tmp_path / name
    make_synthetic(root / "data/raw/synthetic", n_train=8, n_test=1, height=48, width=64, seed=0)
    return root


def _logged(root: Path, term: str) -> list[int]:
    path = root / loop.LIVE_DIR / "plots/metrics/train" / f"{term}.tsv"
    return [int(r["step"]) for r in csv.DictReader(open(path), delimiter="\t")] if path.is_file() else []


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


class _Interrupt(Exception):
    """A run killed mid-step."""


@pytest.mark.slow
def test_both_stages_train_and_resume_across_the_stage_boundary(tmp_path, monkeypatch):
    """8 pairs make one batch an epoch: steps 1-2 train the auto-encoder, then the RFN with L_RFN + β·L_CCL. A run
    killed in its first fusion step resumes from the auto-encoder's last checkpoint with a fresh optimiser for
    the RFN and ends with the weights of an uninterrupted run."""
    params = _params()
    straight = train(params, _root(tmp_path, "a"), max_steps=2)
    a = _weights(straight)
    root = _root(tmp_path, "b")
    real, calls = loop.train_step, []

    def killed_at_third(run, batch):
        calls.append(run.step)
        if len(calls) == 3:
            raise _Interrupt
        return real(run, batch)

    monkeypatch.setattr(loop, "train_step", killed_at_third)
    with pytest.raises(_Interrupt):
        train(params, root, max_steps=2)
    saved = torch.load(root / loop.CHECKPOINT, weights_only=True)
    assert saved["step"] == 2 and saved["stage"] == "autoencoder"
    monkeypatch.undo()
    b = _weights(train(params, root, max_steps=2))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _logged(root, "autoencoder_total") == [1, 2] and _logged(root, "total") == [3, 4]
    assert _logged(root, "rfn_feature") == [3, 4] and _logged(root, "contrast") == [3, 4]
    model, arch = load_model(straight)
    assert arch.name == "rfn_nest" and list(arch.nest_widths) == list(WIDTHS) and not model.training


def _authors_files(folder: Path, seed: int = 3) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / AUTOENCODER_FILE, folder / RFN_FILE
    torch.save(make_state(autoencoder_layout(WIDTHS), seed), paths[0])
    torch.save(make_state(rfn_layout(WIDTHS), seed + 1), paths[1])
    return paths


def test_fusion_stage_trains_the_rfn_on_a_frozen_autoencoder(tmp_path):
    autoencoder, rfn = _authors_files(tmp_path / "authors")
    root = _root(tmp_path, "c")
    params = _params(**{"train.stage": "fusion", "train.autoencoder": str(autoencoder), "loss.terms": ["rfn"]})
    final = train(params, root, max_steps=2)
    given = published_model(autoencoder, rfn).state_dict()
    trained = _weights(final)
    frozen = [k for k in trained if not k.startswith("rfn.")]
    assert frozen and all(torch.equal(trained[k], given[k]) for k in frozen)
    assert not all(torch.equal(trained[k], given[k]) for k in trained if k.startswith("rfn."))
    assert _logged(root, "rfn") == [1, 2] and _logged(root, "autoencoder_total") == []
    identity = torch.load(root / loop.CHECKPOINT, weights_only=True)["fingerprint"]
    assert "autoencoder" in identity  # a changed auto-encoder file is another run


def test_published_stage_trains_nothing_and_writes_the_authors_weights(tmp_path):
    autoencoder, rfn = _authors_files(tmp_path / "authors")
    root = tmp_path / "no-data"  # the published weights need no training data
    params = _params(
        **{"train.stage": "published", "train.autoencoder": str(autoencoder), "train.rfn_weights": str(rfn)}
    )
    final = train(params, root)
    model, arch = load_model(final)
    want = published_model(autoencoder, rfn).state_dict()
    assert all(torch.equal(model.state_dict()[k], want[k]) for k in want) and arch.name == "rfn_nest"
    assert (root / loop.LIVE_DIR / "metrics.json").read_text().strip() == "{}"
    assert (root / loop.CHECKPOINT).parent.is_dir()


def test_the_inputs_stage_asks_for_the_published_files_the_settings_read():
    def needs(**changes) -> list[tuple[str, str]]:
        return [(n.name, n.param) for n in train_weight_needs(_params(**changes))]

    assert needs(**{"train.stage": "fusion", "train.vgg_random_init": False}) == [
        ("vgg19", "train.vgg_weights"),
        ("rfn_nest_autoencoder", "train.autoencoder"),
    ]
    assert needs(**{"train.stage": "both", "loss.terms": ["rfn"], "train.vgg_random_init": False}) == []
    assert needs(**{"train.stage": "published", "train.vgg_random_init": False}) == [
        ("rfn_nest_autoencoder", "train.autoencoder"),
        ("rfn_nest_rfn", "train.rfn_weights"),
    ]
    fifn = override(load_params(REPO / "params.yaml"), {})
    assert [n.name for n in train_weight_needs(fifn)] == ["vgg19"]
