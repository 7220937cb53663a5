"""Data-parallel training (torchrun / DistributedDataParallel) on CPU with gloo: 2 processes, 2 steps.

The rule checked (occo/train/loop.py: ``World``, ``batch_loader``, ``parallel_network``): rank r's step s
trains on plan batch s·N + r with the full ``train.batch_size`` (4 groups), DDP averages the N gradients and
Adam steps with ``train.lr``; BatchNorm running statistics follow rank 0's batches.
"""

from __future__ import annotations

import csv
import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from occo.config import Params, load_params, override
from occo.data import make_synthetic
from occo.losses import OCCOLoss
from occo.nn import build_model, normalise_output
from occo.train import loop, train
from occo.train.data import BatchPlan, CropDataset, StepSampler, check_batch_layout, collate_crops, find_training_pairs
from occo.train.routine import training_flip
from support import REPO

WORLD = 2
STEPS = 2

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()), reason="torch.distributed with gloo unavailable"
)


def _params() -> Params:
    train = {
        "dataset": "synthetic",
        "split": "train",
        "crop": 32,
        "batch_size": 12,
        "epochs": 100,
        "vgg_random_init": True,
        "vgg_weights": None,
        "num_workers": 0,
        "checkpoint_every": 1,
        "log_every": 1,
        "max_steps": None,
    }
    changes = {"arch.widths": [8, 8, 8, 8], "arch.heads": [1, 1, 1, 1], **{f"train.{k}": v for k, v in train.items()}}
    return override(load_params(REPO / "params.yaml"), changes)


def _root(tmp_path: Path, name: str) -> Path:
    root = tmp_path / name
    make_synthetic(root / "data/raw/synthetic", n_train=8, n_test=1, height=48, width=64, seed=0)
    return root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, params: Params, root: str, out: str) -> None:
    """One torchrun-like process: the env torchrun sets, then the stage's ``train`` call."""
    os.environ.update(
        WORLD_SIZE=str(WORLD), RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    models, saves = [], []
    build, save = loop.build_network, loop.save_checkpoint
    loop.build_network = lambda *a, **k: models.append(build(*a, **k)) or models[-1]
    loop.save_checkpoint = lambda path, *a, **k: saves.append(str(path)) or save(path, *a, **k)
    train(params, root, max_steps=STEPS, device="cpu")
    torch.save({k: v.detach().clone() for k, v in models[0].state_dict().items()}, Path(out) / f"rank{rank}.pt")
    (Path(out) / f"saves{rank}.json").write_text(json.dumps(saves))


def _emulate(params: Params, root: Path, world: int, steps: int) -> dict[str, torch.Tensor]:
    """The documented rule by hand: step s averages the gradients of plan batches s·world .. s·world+world-1."""
    cfg, seed, arch = params.train, params.train.seed, params.arch
    pairs = find_training_pairs(root, cfg.dataset, cfg.split)
    flip = training_flip(cfg)
    dataset = CropDataset(pairs, crop=cfg.crop, crops_per_image=cfg.crops_per_image, flip=flip, seed=seed)
    plan = BatchPlan(len(pairs), check_batch_layout(cfg.batch_size, cfg.crops_per_image), seed)
    model = build_model(arch, seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        loss_fn = OCCOLoss.from_config(params)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    model.train()
    params_list = list(model.parameters())
    for step in range(steps):
        grads = [torch.zeros_like(p) for p in params_list]
        for r in range(world):
            batch = collate_crops([dataset[key] for key in plan.batch(step * world + r)])
            ir, vi, ir_mask, vi_mask = batch.split(1, dim=1)
            kept = [b.clone() for b in model.buffers()]
            fused = normalise_output(model(ir=ir, vi=vi).float(), per_image=arch.compat == "fixed")
            total = loss_fn(fused, ir=ir, vi=vi, ir_mask=ir_mask, vi_mask=vi_mask)["total"]
            for g, d in zip(grads, torch.autograd.grad(total, params_list)):
                g += d / world
            if r:  # BatchNorm running stats follow rank 0's batches (DDP broadcasts rank 0's buffers)
                with torch.no_grad():
                    for b, k in zip(model.buffers(), kept):
                        b.copy_(k)
        for p, g in zip(params_list, grads):
            p.grad = g
        optimizer.step()
    return model.state_dict()


def test_sampler_shards_the_stream_by_rank():
    plan = BatchPlan(8, 6, seed=0)
    shards = [list(StepSampler(plan, 1, 4, world_size=3, rank=r)) for r in range(3)]
    for r, batches in enumerate(shards):
        assert batches == [plan.batch(s * 3 + r) for s in range(1, 4)]
    positions = [pos for batches in shards for batch in batches for pos, _ in batch]
    assert len(positions) == len(set(positions))  # no crop seen by two ranks
    assert list(StepSampler(plan, 1, 4)) == [plan.batch(s) for s in range(1, 4)]  # single process unchanged


@pytest.mark.slow
def test_two_processes_train_one_model(tmp_path):
    params = _params()
    root, out = _root(tmp_path, "ddp"), tmp_path / "out"
    out.mkdir()
    torch.multiprocessing.spawn(_worker, args=(_free_port(), params, str(root), str(out)), nprocs=WORLD, join=True)

    rank0, rank1 = (torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(WORLD))
    assert rank0.keys() == rank1.keys() and all(torch.equal(rank0[k], rank1[k]) for k in rank0)  # replicas equal

    saves = [json.loads((out / f"saves{r}.json").read_text()) for r in range(WORLD)]
    assert saves[1] == [] and saves[0].count(str(root / loop.FINAL)) == 1  # only rank 0 writes
    assert sorted(p.relative_to(root / "models").as_posix() for p in (root / "models").rglob("*") if p.is_file()) == [
        "checkpoints/last.pt",
        "occo.pt",
    ]
    final = torch.load(root / loop.FINAL, weights_only=True)["state_dict"]
    assert all(torch.equal(final[k], rank0[k]) for k in rank0)
    ckpt = torch.load(root / loop.CHECKPOINT, weights_only=True)
    assert ckpt["step"] == STEPS and ckpt["world_size"] == WORLD and len(ckpt["rng_ranks"]) == WORLD
    with open(root / loop.LIVE_DIR / "plots/metrics/train/total.tsv") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert [int(r["step"]) for r in rows] == [1, 2]  # one writer: no duplicated steps

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the workers: the same reduction order, so bitwise comparisons hold
    try:
        # the emulation is faithful to the single-process loop (world 1) ...
        single = torch.load(train(params, _root(tmp_path, "single"), max_steps=STEPS, device="cpu"), weights_only=True)
        single = single["state_dict"]
        alone = _emulate(params, _root(tmp_path, "emu"), 1, STEPS)
        assert all(torch.equal(single[k], alone[k]) for k in alone)
        # ... and the 2-process run differs from it exactly by the documented rule (2 batches a step, mean gradient)
        both = _emulate(params, root, WORLD, STEPS)
    finally:
        torch.set_num_threads(threads)
    assert not all(torch.equal(single[k], rank0[k]) for k in rank0)
    assert all(torch.equal(rank0[k], both[k]) for k in both)
