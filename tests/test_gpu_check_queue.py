"""`make gpu-check`'s multi-GPU rows (bench/gpu_check/multigpu.py, shards.py): skipped with one GPU; on two (fake)
GPUs, two DVC queue workers must run at once on different GPUs, and fuse in two torchrun ranks (gloo, CPU) must
write what one process writes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from bench.gpu_check import multigpu, shards
from bench.gpu_check.context import PASS, SKIP, Context
from bench.probe_study import FAKE
from support import REPO


def context(tmp_path: Path) -> Context:
    return Context(device="cuda", work=tmp_path, params=REPO / "params.yaml", deadline=time.time() + 300)


@pytest.mark.parametrize("check", [multigpu.check, shards.check])
def test_one_gpu_is_skipped(tmp_path: Path, monkeypatch, check) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    (row,) = check(context(tmp_path))
    assert (row.status, row.summary) == (SKIP, "skipped: 1 GPU")


@pytest.mark.slow
def test_two_fake_gpus_pass(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv(FAKE, "2")  # the stages see two fake GPUs; the check itself is unchanged
    (row,) = multigpu.check(context(tmp_path))
    assert row.status == PASS, row.summary
    assert row.figures["gpus"] == ["GPU-fake-0", "GPU-fake-1"] and "at the same time" in row.summary


@pytest.mark.slow
def test_sharded_fuse_on_two_fake_gpus_passes(tmp_path: Path, monkeypatch) -> None:
    """The check's path on the CPU: two torchrun ranks with gloo fuse what one process fuses."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    ctx = Context(device="cpu", work=tmp_path, params=REPO / "params.yaml", deadline=time.time() + 300)
    (row,) = shards.check(ctx)
    assert row.status == PASS, row.summary
    assert row.figures["pairs"] == 4 and "outputs identical" in row.summary
