"""Training across machines: two torchrun "nodes" on localhost meet through the c10d rendezvous (gloo), train one
model, stop after a checkpoint and resume it, as docs/training.md's SLURM recipe runs them on a cluster."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import yaml

from occo.config import as_dict, load_params, override
from occo.data import make_synthetic
from occo.train import loop
from support import REPO

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()), reason="no gloo"),
]


def _workspace(root: Path) -> Path:
    make_synthetic(root / "data/raw/synthetic", n_train=8, n_test=1, height=48, width=64, seed=0)
    train = {"dataset": "synthetic", "crop": 32, "batch_size": 12, "epochs": 100, "vgg_random_init": True}
    train |= {"vgg_weights": None, "num_workers": 0, "checkpoint_every": 1, "log_every": 1}
    changes = {"arch.widths": [8, 8, 8, 8], "arch.heads": [1, 1, 1, 1], **{f"train.{k}": v for k, v in train.items()}}
    params = override(load_params(REPO / "params.yaml"), changes)
    (root / "params.yaml").write_text(yaml.safe_dump(as_dict(params), sort_keys=False), encoding="utf-8")
    return root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_two_nodes(root: Path, max_steps: int) -> list[str]:
    """``torchrun --nnodes=2 --nproc_per_node=1 --rdzv_backend=c10d`` twice, as two machines would start it;
    each node's output."""
    params = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
    params["train"]["max_steps"] = max_steps  # the run's length: not part of its identity, so it resumes
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    rendezvous = [
        "--nnodes=2",
        "--nproc_per_node=1",
        "--rdzv_backend=c10d",
        f"--rdzv_endpoint=127.0.0.1:{_free_port()}",
        f"--rdzv_id={uuid.uuid4().hex[:8]}",
    ]
    cmd = [sys.executable, "-m", "torch.distributed.run", *rendezvous, str(REPO / "stages/train.py")]
    cmd += ["--params", str(root / "params.yaml"), "--root", str(root), "--device", "cpu"]
    env = os.environ | {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    nodes = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in "ab"]
    logs = [node.communicate(timeout=300)[0] for node in nodes]
    assert all(node.returncode == 0 for node in nodes), "\n".join(log[-3000:] for log in logs)
    return logs


def test_two_nodes_train_stop_and_resume_as_one_uninterrupted_run(tmp_path: Path) -> None:
    straight = _workspace(tmp_path / "straight")
    launch_two_nodes(straight, 4)

    resumed = _workspace(tmp_path / "resumed")
    first = launch_two_nodes(resumed, 2)
    assert not any("resuming" in log for log in first)
    assert torch.load(resumed / loop.CHECKPOINT, weights_only=True)["step"] == 2
    second = launch_two_nodes(resumed, 4)
    assert all("at step 2" in log and "resuming from" in log for log in second)  # both nodes take the checkpoint
    assert sum("rank 0 of 2" in log for log in second) == 1 and sum("rank 1 of 2" in log for log in second) == 1

    ckpt = torch.load(resumed / loop.CHECKPOINT, weights_only=True)
    assert ckpt["step"] == 4 and ckpt["world_size"] == 2 and len(ckpt["rng_ranks"]) == 2
    a = torch.load(straight / loop.FINAL, weights_only=True)["state_dict"]
    b = torch.load(resumed / loop.FINAL, weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # resumed = uninterrupted, bit for bit
