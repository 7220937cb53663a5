import pytest
import torch

from occo.device import resolve_batch_size, resolve_device


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_resolve_batch_size():
    assert resolve_batch_size("auto", torch.device("cpu")) == 1
    assert resolve_batch_size("auto", torch.device("cuda")) == 8
    assert resolve_batch_size("3", torch.device("cpu")) == 3
    with pytest.raises(ValueError, match="positive"):
        resolve_batch_size(0, torch.device("cpu"))
