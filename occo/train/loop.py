"""The OCCO training loop (params ``train``; model ``arch``; loss ``omega1..6``, ``loss``, ``ablation``).

One run = ``train.epochs`` passes over the training pairs (or ``train.max_steps`` batches). Every
``train.checkpoint_every`` steps and at the end, ``models/checkpoints/last.pt`` holds the model,
the optimiser, the step and the RNG state; re-running resumes from it and ends with the same weights
as an uninterrupted run. The final weights go to ``models/occo.pt`` (``occo.nn.load_model`` reads it).

A checkpoint is resumed only when it was made from the same params *and* the same inputs: it holds
the run's identity (``run_identity``: a digest of the params that shape the optimisation and content
digests of the training images and masks), and a re-run whose identity differs starts from scratch,
logging which of params / images / masks changed (docs/reliability.md). dvclive rows that the
interrupted run logged after the checkpoint are dropped on resume. A state with NaN/inf weights or
BatchNorm statistics is never saved: the run stops with one line naming the step and its loss terms,
and ``last.pt`` keeps the last finite state.

Data parallel: launched by ``torchrun --nproc_per_node=N`` (``WORLD_SIZE`` > 1 in the environment),
each process joins a process group (NCCL on CUDA, gloo on CPU), trains on ``cuda:LOCAL_RANK`` (or the
CPU) and wraps the network in ``DistributedDataParallel``. The contrastive loss needs 4 whole groups
per call, so a batch is not split across ranks; the rule is:

* every rank computes the loss on its own batch of ``train.batch_size`` crops (4 groups, as in a
  single-process run), so one optimisation step sees ``N × train.batch_size`` crops and DDP averages
  the N gradients (the mean of the N per-batch losses); ``train.lr`` is used as configured;
* the ranks share the single-process stream of batches: step ``s`` of rank ``r`` takes batch
  ``s·N + r`` (``StepSampler``), so no two ranks see the same crops and ``train.epochs`` still
  means passes over the data: a run has ``epochs × batches_per_epoch // N`` steps (``train.max_steps``
  and ``checkpoint_every`` count optimisation steps);
* BatchNorm normalises each rank's batch with that batch's statistics (as a single-process batch
  would be); the running statistics are rank 0's (DDP broadcasts rank 0's buffers before every
  forward, and once more at the end, so every replica ends equal to the saved weights);
* each rank draws its own global RNG stream (seed + rank; the contextual loss samples positions);
  a checkpoint holds every rank's RNG state and the world size, and resumes only under the same N;
* only rank 0 writes the checkpoint, the final weights, dvclive (its own batch's loss terms) and
  the progress bar; every rank resumes from the same checkpoint;
* a rank whose loss is non-finite contributes a zero gradient to that step's average (the other
  ranks' gradients are still applied; a skip cannot be agreed on without one more collective), and
  ``train.max_nonfinite`` consecutive failures on any rank stop the run (torchrun ends the others).

``WORLD_SIZE`` unset or 1 is the single-process run, unchanged.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from dvclive import Live
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from occo.data.io import CheckpointError
from occo.losses import NonFiniteLossError, OCCOLoss, TermMeans
from occo.nn import ArchConfig, build_model, normalise_output, save_checkpoint
from occo.nn.checkpoint import is_finite
from occo.pipeline.device import resolve_device
from occo.pipeline.resume import (
    digest_files,
    digest_value,
    load_resume,
    remove_stale_temps,
    rng_state,
    set_rng_state,
    trim_live_history,
)
from occo.train.data import (
    BatchPlan,
    CropDataset,
    MaskedPair,
    StepSampler,
    check_batch_layout,
    collate_crops,
    find_training_pairs,
)

log = logging.getLogger(__name__)

CHECKPOINT = Path("models/checkpoints/last.pt")
FINAL = Path("models/occo.pt")
LIVE_DIR = Path("dvclive/train")
RESUME_INDEPENDENT = {"epochs", "max_steps", "checkpoint_every", "log_every", "num_workers", "compile"}
"""train.* params that may change between a run and its resumption."""


DIVERGED = "lower train.lr and re-run (a run with other params starts from scratch)"


class TrainingStopped(RuntimeError):
    """Training cannot go on (non-finite weights or losses); one line naming the step and what to do."""


@dataclass(frozen=True)
class World:
    """This process's place in a torchrun launch (``WORLD_SIZE``/``RANK``/``LOCAL_RANK``); 1/0/0 alone."""

    size: int = 1
    rank: int = 0
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> World:
        env = os.environ
        if int(env.get("WORLD_SIZE", "1")) <= 1:
            return cls()
        return cls(int(env["WORLD_SIZE"]), int(env["RANK"]), int(env.get("LOCAL_RANK", env["RANK"])))

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def run_fingerprint(params: Mapping[str, Any]) -> str:
    """Hash of every param that shapes the optimisation; a checkpoint resumes only under the same one."""
    keys = [f"omega{i}" for i in range(1, 7)]
    relevant = {k: params.get(k) for k in (*keys, "arch", "loss", "ablation")}
    relevant["train"] = {k: v for k, v in params["train"].items() if k not in RESUME_INDEPENDENT}
    return digest_value(relevant)[:16]


def run_identity(params: Mapping[str, Any], pairs: list[MaskedPair]) -> dict[str, str]:
    """What a checkpoint must share with this run to be resumed: ``params`` (:func:`run_fingerprint`),
    ``images`` and ``masks`` (content digests of every pair's infrared/visible images and masks, by id)."""
    images = {f"{kind}/{p.id}": path for p in pairs for kind, path in (("ir", p.ir), ("vi", p.vi))}
    masks = {f"{kind}/{p.id}": path for p in pairs for kind, path in (("ir", p.ir_mask), ("vi", p.vi_mask))}
    return {"params": run_fingerprint(params), "images": digest_files(images), "masks": digest_files(masks)}


def load_training_state(path: Path, identity: Mapping[str, str], world_size: int = 1) -> dict[str, Any] | None:
    """The checkpoint at ``path`` when it belongs to this run (same :func:`run_identity` and process count),
    else None with a warning naming what changed. CheckpointError for an unreadable file or NaN weights."""
    ckpt = load_resume(path, identity, remedy="delete it to train from scratch")
    if ckpt is None:
        return None
    if not is_finite(list(ckpt["state_dict"].values())):
        raise CheckpointError(
            f"{path} holds NaN/inf weights (step {ckpt['step']}): delete it, lower train.lr and train from scratch"
        )
    if ckpt.get("world_size", 1) != world_size:
        log.warning(
            "ignoring %s: written under other params (%d processes, now %d); training from scratch",
            path,
            ckpt.get("world_size", 1),
            world_size,
        )
        return None
    log.info("resuming from %s at step %d", path, ckpt["step"])
    return ckpt


def train(params: Mapping[str, Any], root: str | Path, *, max_steps: int | None = None, device: str = "auto") -> Path:
    """Train on ``train.dataset``/``train.split`` under ``root``; returns the path of the final weights.

    ``max_steps`` (else ``train.max_steps``, else all epochs) caps the total number of batches
    (optimisation steps under torchrun; see the module docstring for the data-parallel rule).
    """
    world = World.from_env()
    if not world.distributed:
        return _train(params, Path(root), max_steps, resolve_device(device), world)
    dev = resolve_device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(dev)
    owns_group = not torch.distributed.is_initialized()
    if owns_group:
        torch.distributed.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    try:
        return _train(params, Path(root), max_steps, dev, world)
    finally:
        if owns_group:
            torch.distributed.destroy_process_group()


def _train(params: Mapping[str, Any], root: Path, max_steps: int | None, dev: torch.device, world: World) -> Path:
    cfg = params["train"]
    seed = int(cfg["seed"])
    arch = ArchConfig.from_dict(params["arch"])
    per_image = arch.compat == "fixed"  # docs/fidelity.md row 9: official normalises over the batch
    crops_per_image = int(cfg.get("crops_per_image", 2))
    images_per_batch = check_batch_layout(int(cfg["batch_size"]), crops_per_image)

    pairs = find_training_pairs(root, cfg["dataset"], cfg["split"])
    dataset = CropDataset(
        pairs, crop=int(cfg["crop"]), crops_per_image=crops_per_image, flip=bool(cfg.get("flip", True)), seed=seed
    )
    plan = BatchPlan(len(pairs), images_per_batch, seed)
    if plan.repeats > 1:
        log.warning("%d pairs < %d images per batch: images repeat inside a batch", len(pairs), images_per_batch)
    cap = max_steps if max_steps is not None else cfg.get("max_steps")
    total = int(cfg["epochs"]) * plan.batches_per_epoch // world.size
    total = total if cap is None else min(total, int(cap))

    model = build_model(arch, seed).to(dev)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # random VGG (smoke runs) from the run's seed
        loss_fn = OCCOLoss.from_params(params).to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=float(cfg["lr"]))
    if dev.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    amp = cfg.get("amp", "bf16")
    if amp not in ("bf16", "none"):
        raise ValueError(f"train.amp={amp!r}: expected 'bf16' (bf16 autocast on CUDA) or 'none'")
    use_bf16 = dev.type == "cuda" and amp == "bf16"
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if use_bf16 else contextlib.nullcontext

    ckpt_path, final_path = root / CHECKPOINT, root / FINAL
    identity = [run_identity(params, pairs) if world.main else None]
    if world.distributed:  # rank 0 reads the inputs once; every rank takes the same decision
        torch.distributed.broadcast_object_list(identity, src=0)
    fingerprint: dict[str, str] = identity[0]
    if world.main:
        for path in (ckpt_path, final_path):
            remove_stale_temps(path)
    resume = load_training_state(ckpt_path, fingerprint, world.size)
    step = 0
    if resume is not None:
        model.load_state_dict(resume["state_dict"])
        optimizer.load_state_dict(resume["optimizer"])
        step = int(resume["step"])
    net: torch.nn.Module = model
    if world.distributed:  # after resuming: every rank holds the same weights (DDP broadcasts rank 0's anyway)
        net = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    forward = torch.compile(net) if cfg.get("compile", False) else net

    saved_step = step if resume is not None else None

    def stop(problem: str, remedy: str) -> TrainingStopped:
        """Training ends here: the step, the problem, the last loss terms, the checkpoint kept, what to do."""
        last = "none computed"
        if terms is not None:
            last = ", ".join(f"{k}={v:.4g}" for k, v in zip(terms, torch.stack(list(terms.values())).tolist()))
        kept = f"{ckpt_path} resumes at step {saved_step}" if saved_step is not None else "no checkpoint was written"
        return TrainingStopped(
            f"step {step}: {problem} (last loss terms: {last}); {kept} (the last finite state); {remedy}"
        )

    def checkpoint() -> None:
        nonlocal saved_step
        if not is_finite([*model.parameters(), *model.buffers()]):
            raise stop("the weights or BatchNorm statistics are NaN/inf, not saved", DIVERGED)
        rng, extra = rng_state(dev), {}
        if world.distributed:  # collective: every rank's RNG state, so each resumes its own stream
            states: list[Any] = [None] * world.size
            torch.distributed.all_gather_object(states, rng)
            extra = {"world_size": world.size, "rng_ranks": states}
        if world.main:
            save_checkpoint(
                ckpt_path,
                model,
                arch,
                optimizer=optimizer.state_dict(),
                step=step,
                rng=rng,
                fingerprint=fingerprint,
                **extra,
            )
        saved_step = step

    loader = DataLoader(
        dataset,
        batch_sampler=StepSampler(plan, step, total, world_size=world.size, rank=world.rank),
        collate_fn=collate_crops,
        num_workers=int(cfg.get("num_workers", 4)),
        pin_memory=dev.type == "cuda",
        generator=torch.Generator().manual_seed(seed),  # the loader draws its base seed from here, not the global RNG
    )
    checkpoint_every, log_every = int(cfg.get("checkpoint_every", 500)), int(cfg.get("log_every", 10))
    max_bad = int(cfg.get("max_nonfinite", 20))
    if world.distributed:
        log.info(
            "rank %d of %d: %d crops per rank and step (%d per step in all), batches %d·s+%d",
            world.rank,
            world.size,
            int(cfg["batch_size"]),
            world.size * int(cfg["batch_size"]),
            world.size,
            world.rank,
        )
    log.info(
        "training %s/%s: %d pairs, %d batches/epoch, steps %d..%d on %s; checkpoint %s, weights %s, logs %s",
        cfg["dataset"],
        cfg["split"],
        len(pairs),
        plan.batches_per_epoch,
        step,
        total,
        dev,
        ckpt_path,
        final_path,
        root / LIVE_DIR,
    )
    model.train()
    if resume is not None and world.main:  # rows the interrupted run logged after its checkpoint go
        trim_live_history(root / LIVE_DIR, step)
    live_ctx = (
        Live(dir=str(root / LIVE_DIR), resume=resume is not None, save_dvc_exp=False, dvcyaml=False)
        if world.main
        else contextlib.nullcontext()
    )
    terms: dict[str, torch.Tensor] | None = None  # the last computed loss terms, named when training stops
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []), live_ctx as live:
        torch.manual_seed(seed + world.rank)
        if resume is not None:
            set_rng_state(resume["rng_ranks"][world.rank] if world.distributed else resume["rng"], dev)
        window, bad = TermMeans(), 0  # a term skipped at some steps is averaged over the others
        bar = tqdm(
            loader, total=total, initial=step, desc="train", unit="step", dynamic_ncols=True, disable=not world.main
        )
        for batch in bar:
            batch = batch.to(dev, non_blocking=True)
            if dev.type == "cuda":
                batch = batch.contiguous(memory_format=torch.channels_last)
            ir, vi, ir_mask, vi_mask = batch.split(1, dim=1)
            try:
                with autocast():  # VGG in bf16; the losses compute their similarities in float32
                    fused = normalise_output(forward(ir, vi).float(), per_image=per_image)
                    terms = loss_fn(fused, vi, ir, ir_mask, vi_mask)
            except NonFiniteLossError as err:
                bad += 1
                log.warning("step %d skipped (%d in a row): %s", step, bad, err)
                if not is_finite([*model.parameters(), *model.buffers()]):  # no later step can recover
                    raise stop(f"the weights or BatchNorm statistics are NaN/inf ({err})", DIVERGED) from err
                if bad >= max_bad:
                    raise stop(
                        f"{bad} consecutive non-finite losses (train.max_nonfinite={max_bad}; {err})",
                        "check the inputs named there, lower train.lr or raise train.max_nonfinite",
                    ) from err
                terms = None
                if world.distributed:  # the other ranks wait in the all-reduce: join it with a zero gradient
                    optimizer.zero_grad(set_to_none=True)
                    (torch.stack([p.sum() for p in model.parameters()]).sum() * 0).backward()
                    optimizer.step()
            if terms is not None:
                bad = 0
                optimizer.zero_grad(set_to_none=True)
                terms["total"].backward()
                optimizer.step()
                window.add(terms)
            step += 1
            if world.main and window and (step % log_every == 0 or step == total):
                means = window.pop()  # terms absent from the whole window are not logged
                live.step = step
                for name, value in means.items():
                    live.log_metric(f"train/{name}", value)
                live.log_metric("train/lr", optimizer.param_groups[0]["lr"])
                live.next_step()
                bar.set_postfix({k: f"{means[k]:.4g}" for k in ("total", "pixel", "contrast") if k in means})
            if step % checkpoint_every == 0:
                checkpoint()
        if world.distributed:  # DDP keeps parameters equal; BatchNorm running stats are rank 0's (see above)
            for buffer in model.buffers():
                torch.distributed.broadcast(buffer, src=0)
        checkpoint()
    if world.main:
        save_checkpoint(final_path, model, arch, step=step, fingerprint=fingerprint)
        log.info("wrote %s (step %d) and %s; metrics in %s", final_path, step, ckpt_path, root / LIVE_DIR)
    if world.distributed:
        torch.distributed.barrier()  # the final weights exist when train() returns on any rank
    return final_path
