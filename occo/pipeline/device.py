"""Where work runs: the device and batch-size rules shared by evaluation, training, fusion and the flags."""

from __future__ import annotations

import argparse
import functools
import logging
import os
from pathlib import Path

import torch

from occo.config.types import BatchSize, Device
from occo.pipeline.flags import schema_flag
from occo.pipeline.gpus import LOCK_DIR, claim_gpu, workspace_of

log = logging.getLogger(__name__)


def visible_gpus() -> list[str]:
    """The CUDA devices this process sees, in index order, each named by its UUID; [] without CUDA."""
    if not torch.cuda.is_available():
        return []
    return [str(torch.cuda.get_device_properties(i).uuid) for i in range(torch.cuda.device_count())]


def auto_device() -> torch.device:
    """``'auto'``: the CPU without CUDA; with one GPU, or under torchrun (which gives each rank
    ``cuda:LOCAL_RANK``), or outside a DVC workspace, ``cuda``; with several, the GPU of their own that
    :func:`occo.pipeline.gpus.claim_gpu` gives this process through the workspace's lock files, held until
    it exits, so the experiments of ``dvc queue start -j N`` run on N different GPUs. That GPU becomes the
    process's current CUDA device, so libraries that place tensors on ``cuda`` without an index follow it."""
    gpus = visible_gpus()
    if not gpus:
        return torch.device("cpu")
    workspace = workspace_of(Path(os.environ.get("DVC_ROOT") or Path.cwd()))
    if len(gpus) == 1 or "LOCAL_RANK" in os.environ or workspace is None or os.name != "posix":
        return torch.device("cuda")
    claim = claim_gpu(gpus, workspace / LOCK_DIR)
    torch.cuda.set_device(claim.index)
    if claim.new:
        log.info(
            "device auto: cuda:%d of %d GPUs, shared with %d other process(es) of this workspace (lock %s)",
            claim.index,
            len(gpus),
            claim.others,
            claim.lock,
        )
    return torch.device("cuda", claim.index)


def resolve_device(name: str | torch.device, param: str = "device") -> torch.device:
    """``'auto'`` → :func:`auto_device` (CUDA when available, one GPU per process, else CPU); ``'cpu'``;
    ``'cuda'`` / ``'cuda:N'`` when that device exists. The name is a ``Device`` of the schema (a param, or a
    flag parsed by :func:`device_flag`); CUDA on a machine without it, or an index past its devices, is a
    ValueError naming ``param`` and the value."""
    text = str(name)
    if text == "auto":
        return auto_device()
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


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity; the CPU count where that is not known)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


@functools.cache
def loader_workers(requested: int, param: str) -> int:
    """Data-loader workers: ``requested`` (the param ``param``), at most one per usable CPU; said once per process
    when capped.

    More workers than CPUs only contend (PyTorch warns at every loader it builds); the batches never depend on
    the worker count, so capping changes the speed, not the result.
    """
    cpus = usable_cpus()
    if requested <= cpus:
        return requested
    log.info("%s = %d, but this process may use %d CPUs: %d data-loader workers", param, requested, cpus, cpus)
    return cpus


def device_flag(value: str) -> str:
    """argparse type of ``--device``: a ``Device`` of the schema that this machine has (see resolve_device)."""
    schema_flag(Device, value, "--device")
    if value == "auto":  # always valid; its GPU is taken when the command resolves it
        return value
    try:
        resolve_device(value, "--device")
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix("--device = ")) from None
    return value


def batch_size_flag(value: str) -> int | str:
    """argparse type of ``--batch-size``: ``'auto'`` or a positive integer (``BatchSize``)."""
    return schema_flag(BatchSize, value, "--batch-size")
