import argparse
import logging

import pytest
import torch

from occo.pipeline import device
from occo.pipeline.device import batch_size_flag, device_flag, resolve_batch_size, resolve_device
from occo.pipeline.flags import max_pixels_flag


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_cuda_without_cuda_is_an_error_not_a_later_crash(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for name in ("cuda", "cuda:0"):
        with pytest.raises(ValueError, match=f"masks.device = '{name}': CUDA is not available"):
            resolve_device(name, "masks.device")
    assert resolve_device("auto") == torch.device("cpu")


def test_cuda_index_beyond_the_machine(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ValueError, match=r"'cuda:2': this machine has 2 CUDA device"):
        resolve_device("cuda:2")


def test_resolve_batch_size():
    assert resolve_batch_size("auto", torch.device("cpu")) == 1
    assert resolve_batch_size("auto", torch.device("cuda")) == 8
    assert resolve_batch_size(3, torch.device("cpu")) == 3


@pytest.mark.parametrize("name", ["gpu", "CUDA", "cuda:", "cuda:x", "mps", ""])
def test_unknown_device_flag_names_the_allowed_values(name):
    with pytest.raises(argparse.ArgumentTypeError, match="should be auto, cpu, cuda or cuda:N"):
        device_flag(name)


def test_flag_types():
    assert batch_size_flag("auto") == "auto" and batch_size_flag("16") == 16
    assert device_flag("cpu") == "cpu" and device_flag("auto") == "auto"
    assert max_pixels_flag("40000000") == 40_000_000
    for flag, value in (
        (batch_size_flag, "-1"),
        (batch_size_flag, "abc"),
        (batch_size_flag, "2.5"),
        (device_flag, "gpu"),
        (max_pixels_flag, "0"),
        (max_pixels_flag, "2.5"),
        (max_pixels_flag, "1e6"),
        (max_pixels_flag, str(10**12)),
    ):
        with pytest.raises(argparse.ArgumentTypeError, match=f"^{value!r}: should be "):
            flag(value)


def test_loader_workers_are_capped_at_the_usable_cpus_and_said_once(monkeypatch, caplog):
    monkeypatch.setattr(device, "usable_cpus", lambda: 2)
    device.loader_workers.cache_clear()
    with caplog.at_level(logging.INFO, logger="occo.pipeline.device"):
        assert device.loader_workers(1, "train.num_workers") == 1
        assert device.loader_workers(4, "train.num_workers") == 2
        assert device.loader_workers(4, "train.num_workers") == 2
    assert caplog.text.count("train.num_workers = 4, but this process may use 2 CPUs: 2 data-loader workers") == 1
    device.loader_workers.cache_clear()
