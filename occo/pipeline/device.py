"""Where work runs: the device and batch-size rules shared by evaluation, training, fusion and the flags."""

from __future__ import annotations

import argparse

import torch

from occo.config.types import BatchSize, Device
from occo.pipeline.flags import schema_flag


def resolve_device(name: str | torch.device, param: str = "device") -> torch.device:
    """``'auto'`` → CUDA when available, else CPU; ``'cpu'``; ``'cuda'`` / ``'cuda:N'`` when that device
    exists. The name is a ``Device`` of the schema (a param, or a flag parsed by :func:`device_flag`); CUDA
    on a machine without it, or an index past its devices, is a ValueError naming ``param`` and the value."""
    text = str(name)
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(text)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{param} = {text!r}: CUDA is not available on this machine; use auto or cpu")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(f"{param} = {text!r}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    return device


def resolve_batch_size(batch_size: int | str, device: torch.device) -> int:
    """``'auto'`` → 1 on CPU (one image's working set stays in cache) and 8 on CUDA, where batching fills the
    device; else the number (a ``BatchSize`` of the schema: a param, or a flag parsed by :func:`batch_size_flag`)."""
    if batch_size == "auto":
        return 8 if device.type == "cuda" else 1
    return batch_size


def device_flag(value: str) -> str:
    """argparse type of ``--device``: a ``Device`` of the schema that this machine has (see resolve_device)."""
    schema_flag(Device, value, "--device")
    try:
        resolve_device(value, "--device")
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix("--device = ")) from None
    return value


def batch_size_flag(value: str) -> int | str:
    """argparse type of ``--batch-size``: ``'auto'`` or a positive integer (``BatchSize``)."""
    return schema_flag(BatchSize, value, "--batch-size")
