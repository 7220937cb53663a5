import argparse

import pytest
import torch

from occo.pipeline.device import batch_size_flag, device_flag, resolve_batch_size, resolve_device


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("name", ["gpu", "CUDA", "cuda:", "cuda:x", "mps", ""])
def test_unknown_device_names_param_value_and_allowed(name):
    with pytest.raises(ValueError) as err:
        resolve_device(name, "fuse.device")
    assert str(err.value) == f"fuse.device = {name!r}: should be auto, cpu, cuda or cuda:N"


def test_cuda_without_cuda_is_an_error_not_a_later_crash(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for name in ("cuda", "cuda:0"):
        with pytest.raises(ValueError, match=f"^masks.device = '{name}': CUDA is not available on this machine"):
            resolve_device(name, "masks.device")
    assert resolve_device("auto") == torch.device("cpu")


def test_cuda_index_beyond_the_machine(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ValueError, match=r"^device = 'cuda:2': this machine has 2 CUDA device\(s\), cuda:0 to cuda:1$"):
        resolve_device("cuda:2")


def test_resolve_batch_size():
    assert resolve_batch_size("auto", torch.device("cpu")) == 1
    assert resolve_batch_size("auto", torch.device("cuda")) == 8
    assert resolve_batch_size("3", torch.device("cpu")) == 3
    with pytest.raises(ValueError, match="positive"):
        resolve_batch_size(0, torch.device("cpu"))
    with pytest.raises(ValueError, match=r"^fuse.batch_size = 'abc': should be auto or a positive integer$"):
        resolve_batch_size("abc", torch.device("cpu"), "fuse.batch_size")
    with pytest.raises(ValueError, match="positive"):
        resolve_batch_size(2.5, torch.device("cpu"))


def test_flag_types():
    assert batch_size_flag("auto") == "auto" and batch_size_flag("16") == 16
    assert device_flag("cpu") == "cpu" and device_flag("auto") == "auto"
    for flag, value in ((batch_size_flag, "-1"), (batch_size_flag, "abc"), (device_flag, "gpu")):
        with pytest.raises(argparse.ArgumentTypeError, match=f"^{value!r}: should be "):
            flag(value)
