"""VGG19 feature extractor: weight loading (local file, offline error), grey folding, freezing, taps."""

from __future__ import annotations

import urllib.error

import pytest
import torch
from torchvision.models.vgg import cfgs, make_layers

from occo.losses.vgg import (
    GREY_COEFFICIENTS,
    MODULE_NAMES,
    RELU_LAYERS,
    VGG19Features,
    WeightsUnavailableError,
)
from support import PicklePayload

URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"


@pytest.fixture(scope="module")
def local_weights(tmp_path_factory):
    """A torchvision-style state dict (random) up to relu2_2, plus a classifier entry to be ignored."""
    torch.manual_seed(0)
    cut = MODULE_NAMES.index("relu2_2") + 1
    state = {f"features.{k}": v for k, v in make_layers(cfgs["E"])[:cut].state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)
    path = tmp_path_factory.mktemp("weights") / "vgg19-dcbb9e9d.pth"
    torch.save(state, path)
    return path, state


def test_offline_without_local_copy_raises_one_clear_error(monkeypatch, tmp_path):
    def no_network(*args, **kwargs):
        raise urllib.error.URLError("offline")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # empty hub cache
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(WeightsUnavailableError) as err:
        VGG19Features(None)
    message = str(err.value)
    for needle in ("vgg19-dcbb9e9d.pth", URL, "train.vgg_weights", "offline"):
        assert needle in message
    assert "\n" not in message
    assert not (tmp_path / "hub").exists()  # the failed download leaves no empty hub/checkpoints behind


def test_missing_local_file_names_it(tmp_path):
    missing = tmp_path / "nope" / "vgg19-dcbb9e9d.pth"
    with pytest.raises(WeightsUnavailableError, match="train.vgg_weights") as err:
        VGG19Features(missing)
    assert str(missing) in str(err.value) and URL in str(err.value)


def test_loads_local_file_and_truncates(local_weights):
    path, state = local_weights
    vgg = VGG19Features(path, layers=("relu1_1", "relu2_2"))
    assert len(vgg.body) == MODULE_NAMES.index("relu2_2") + 1
    for key, value in vgg.body.state_dict().items():
        torch.testing.assert_close(value, state[f"features.{key}"])
    out = vgg(torch.rand(2, 1, 32, 32))
    assert set(out) == {"relu1_1", "relu2_2"}
    assert out["relu1_1"].shape == (2, 64, 32, 32) and out["relu2_2"].shape == (2, 128, 16, 16)


def test_local_file_without_the_needed_layers_is_rejected(local_weights):
    with pytest.raises(WeightsUnavailableError, match="not a torchvision VGG19 state dict"):
        VGG19Features(local_weights[0], layers=("relu3_1",))


def test_grey_network_folds_rgb_weights(local_weights):
    path, state = local_weights
    grey = VGG19Features(path, in_channels=1, layers=("relu1_1",))
    w = state["features.0.weight"]
    folded = sum(c * w[:, i : i + 1] for i, c in enumerate(GREY_COEFFICIENTS))
    torch.testing.assert_close(grey.body[0].weight, folded)
    torch.testing.assert_close(grey.body[0].bias, state["features.0.bias"])
    # On grey input the folded network equals the RGB one fed (0.299 x, 0.587 x, 0.114 x) unnormalised.
    rgb = VGG19Features(path, layers=("relu1_1",))
    x = torch.rand(1, 1, 8, 8)
    weights = torch.tensor(GREY_COEFFICIENTS).view(1, 3, 1, 1)
    torch.testing.assert_close(grey(x)["relu1_1"], rgb.body[:2](x * weights), rtol=1e-5, atol=1e-5)


def test_rgb_network_normalises_grey_input_like_imagenet(local_weights):
    rgb = VGG19Features(local_weights[0], layers=("relu1_1",))
    x = torch.rand(1, 1, 8, 8)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.testing.assert_close(rgb(x)["relu1_1"], rgb.body[:2]((x.expand(-1, 3, -1, -1) - mean) / std))


def test_random_init_is_explicit_frozen_and_stays_in_eval():
    vgg = VGG19Features(random_init=True, layers=RELU_LAYERS)
    assert all(not p.requires_grad for p in vgg.parameters())
    parent = torch.nn.Sequential(vgg).train()
    assert not vgg.training and not parent[0].training
    assert MODULE_NAMES[len(vgg.body) - 1] == "relu5_4"
    out = vgg(torch.rand(1, 1, 32, 32))
    assert list(out) == list(RELU_LAYERS)
    assert out["relu5_4"].shape == (1, 512, 2, 2)
    with pytest.raises(ValueError, match="either"):
        VGG19Features("x.pth", random_init=True)


def test_gradients_reach_the_input_not_the_weights():
    vgg = VGG19Features(random_init=True, layers=("relu3_4",))
    x = torch.rand(1, 1, 16, 16, requires_grad=True)
    vgg(x)["relu3_4"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in vgg.parameters())


def test_bad_layer_and_channel_arguments():
    with pytest.raises(ValueError, match="relu5_4"):
        VGG19Features(random_init=True, layers=("relu6_1",))
    with pytest.raises(ValueError, match="in_channels"):
        VGG19Features(random_init=True, in_channels=2)


def test_pickled_weights_are_refused_in_one_line_and_never_run(tmp_path):
    """A .pth carrying pickled code used to be refused by weights_only with an UnpicklingError traceback."""
    evil = tmp_path / "vgg19-dcbb9e9d.pth"
    torch.save({"features.0.weight": PicklePayload(tmp_path / "executed")}, evil)
    with pytest.raises(WeightsUnavailableError) as err:
        VGG19Features(evil)
    message = str(err.value)
    assert message.startswith(f"{evil} holds pickled Python objects (io.open)") and "\n" not in message
    assert "train.vgg_weights" in message and not (tmp_path / "executed").exists()
