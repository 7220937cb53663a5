"""One GPU per process through the workspace's lock files, on fake GPUs: concurrent processes, exit, kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

from occo.pipeline import device
from occo.pipeline.gpus import LOCK_DIR, claim_gpu, holders, workspace_of
from support import REPO

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the GPU locks are flock(2) files")

GPUS = ["GPU-aaaa", "GPU-bbbb"]
HOLDER = (
    "import sys; from pathlib import Path; from occo.pipeline.gpus import claim_gpu\n"
    "c = claim_gpu(sys.argv[2:], Path(sys.argv[1])); print(c.index, c.others, flush=True); sys.stdin.read()\n"
)


def hold(lock_dir: Path, gpus: list[str] = GPUS) -> subprocess.Popen:
    """A process that takes a GPU and keeps it until its stdin closes."""
    env = os.environ | {"PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock_dir), *gpus], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
    )


def taken(proc: subprocess.Popen) -> tuple[int, int]:
    index, others = proc.stdout.readline().split()
    return int(index), int(others)


def release(*procs: subprocess.Popen) -> None:
    for proc in procs:
        proc.stdin.close()
        proc.wait(timeout=30)


def test_workspace_of_a_queue_copy_is_the_workspace(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    copy = ws / ".dvc/tmp/exps/tmpab12cd"
    for folder in (ws / ".dvc", copy / ".dvc", ws / "stages"):
        folder.mkdir(parents=True)
    assert workspace_of(ws) == ws and workspace_of(ws / "stages") == ws
    assert workspace_of(copy) == ws and workspace_of(copy / "sub") == ws  # every queue worker finds one lock folder
    assert workspace_of(tmp_path / "elsewhere") is None


def test_processes_take_distinct_gpus_then_share_the_least_held(tmp_path: Path) -> None:
    first, second = hold(tmp_path), hold(tmp_path)
    claims = [taken(first), taken(second)]
    assert sorted(index for index, _ in claims) == [0, 1] and all(others == 0 for _, others in claims)
    third = hold(tmp_path)
    assert taken(third) == (0, 1)  # more processes than GPUs: the least held GPU, shared (none waits)
    fourth = hold(tmp_path)
    assert taken(fourth) == (1, 1)
    release(first, second, third, fourth)


def test_a_gpu_is_free_again_when_its_process_exits_or_is_killed(tmp_path: Path) -> None:
    first = hold(tmp_path)
    assert taken(first)[0] == 0
    second = hold(tmp_path)
    assert taken(second)[0] == 1
    second.send_signal(signal.SIGKILL)
    second.wait(timeout=30)
    assert holders(tmp_path, GPUS[1]) == {}  # the kernel dropped the lock with the process
    third = hold(tmp_path)
    assert taken(third) == (1, 0)
    release(first)
    fourth = hold(tmp_path)
    assert taken(fourth) == (0, 0)
    release(third, fourth)


def test_concurrent_starts_spread_evenly(tmp_path: Path) -> None:
    procs = [hold(tmp_path) for _ in range(6)]
    counts = Counter(taken(p)[0] for p in procs)
    release(*procs)
    assert counts == {0: 3, 1: 3}


def test_a_process_keeps_its_gpu_when_it_asks_again(tmp_path: Path) -> None:
    other = hold(tmp_path)
    assert taken(other)[0] == 0
    try:  # this test process keeps its claim until pytest exits; its lock file goes with tmp_path
        claim = claim_gpu(GPUS, tmp_path)
        again = claim_gpu(GPUS, tmp_path)
        assert (claim.index, claim.new) == (1, True) and (again.index, again.new) == (1, False)
        assert holders(tmp_path, GPUS[1]) == {0: os.getpid()}
    finally:
        release(other)


def test_auto_takes_a_gpu_of_its_own_in_a_workspace(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / ".dvc").mkdir()
    copy = tmp_path / ".dvc/tmp/exps/tmp1"
    (copy / ".dvc").mkdir(parents=True)
    monkeypatch.setattr(device, "visible_gpus", lambda: ["GPU-c", "GPU-d"])
    current = []
    monkeypatch.setattr(torch.cuda, "set_device", current.append)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(copy))  # a stage of a queued experiment
    other = hold(tmp_path / LOCK_DIR, ["GPU-c", "GPU-d"])
    try:
        assert taken(other)[0] == 0
        assert device.resolve_device("auto") == torch.device("cuda", 1)
        assert holders(tmp_path / LOCK_DIR, "GPU-d") == {0: os.getpid()} and current == [1]
        monkeypatch.setenv("LOCAL_RANK", "0")  # torchrun gives the rank its GPU
        assert device.resolve_device("auto") == torch.device("cuda")
    finally:
        release(other)


def test_auto_without_a_choice_takes_no_lock(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".dvc").mkdir()
    monkeypatch.setattr(device, "visible_gpus", lambda: ["GPU-only"])
    assert device.resolve_device("auto") == torch.device("cuda")
    monkeypatch.setattr(device, "visible_gpus", lambda: [])
    assert device.resolve_device("auto") == torch.device("cpu")
    assert not (tmp_path / LOCK_DIR).exists()
