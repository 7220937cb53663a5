"""The training loop (params ``train``; model ``arch``; loss ``omega1..6``, ``alpha``, ``beta``, ``loss``,
``ablation``).

One run = ``train.epochs`` passes over the training pairs (or ``train.max_steps`` batches). It reads top to
bottom in :func:`run_training`: :func:`set_up` (data, network, loss, optimiser),
:func:`resume_from_checkpoint` (this run's checkpoint, if any), then per batch :func:`train_step`,
:func:`log_terms` and, every ``train.checkpoint_every`` steps, :func:`save_progress`; :func:`finish` and
:func:`write_weights` end it.

The network is the one ``arch.name`` names (occo.nn.networks); the loss the sum of ``loss.terms``
(occo.losses.total). RFN-Nest trains in stages (``train.stage``, occo.train.stages): the run's first steps may
train its auto-encoder (:func:`autoencoder_step`), the others its RFN; ``published`` trains nothing.

``models/checkpoints/last.pt`` holds the model, the optimiser, the step and the RNG state; re-running
resumes from it and ends with the same weights as an uninterrupted run. The final weights go to
``models/occo.pt`` (``occo.nn.load_model`` reads it). A checkpoint is resumed only when it was made from
the same params *and* the same inputs (:func:`training_identity`); otherwise the run starts from scratch,
logging which of params / images / masks changed (docs/reliability.md). A state with NaN/inf weights or
BatchNorm statistics is never saved: the run stops with one line naming the step and its loss terms, and
``last.pt`` keeps the last finite state.

Data parallel (``torchrun --nproc_per_node=N``): :class:`World` is the launch, and each step of the recipe
says what it does under N processes; ``WORLD_SIZE`` unset or 1 is the single-process run.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from dvclive import Live
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from occo.config import Params, Train, as_dict
from occo.data.io import CheckpointError
from occo.losses import AutoencoderLoss, NonFiniteLossError, TermMeans, TotalLoss, build_loss
from occo.losses.total import needs_features
from occo.nn import build_network, normalise_output, save_checkpoint
from occo.nn.checkpoint import is_finite
from occo.nn.rfn_nest import NestAutoEncoder
from occo.pipeline.device import loader_workers, resolve_device
from occo.pipeline.resume import (
    digest_files,
    digest_value,
    load_resume,
    rebuild_live_summary,
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
    pairs_with_objects,
)
from occo.train.routine import routine_of, training_autocast, training_flip, training_precision
from occo.train.stages import (
    TRAIN_STAGES,
    autoencoder_parameters,
    autoencoder_steps,
    fusion_parameters,
    load_autoencoder,
    starting_autoencoder,
    write_published,
)

log = logging.getLogger(__name__)

CHECKPOINT = Path("models/checkpoints/last.pt")
FINAL = Path("models/occo.pt")
LIVE_DIR = Path("dvclive/train")
FINGERPRINTED = (
    "omega1",
    "omega2",
    "omega3",
    "omega4",
    "omega5",
    "omega6",
    "alpha",
    "beta",
    "arch",
    "loss",
    "ablation",
)
"""Top-level params (and ``train``, but for :data:`NOT_FINGERPRINTED`) that shape the optimisation."""
NOT_FINGERPRINTED = frozenset({"epochs", "max_steps", "checkpoint_every", "log_every", "num_workers", "compile"})
"""train.* params that may change between a run and its resumption."""
DIVERGED = "lower train.lr and re-run (a run with other params starts from scratch)"


class TrainingStopped(RuntimeError):
    """Training cannot go on (non-finite weights or losses); one line naming the step and what to do."""


@dataclass(frozen=True)
class World:
    """This process's place in a torchrun launch (``WORLD_SIZE``/``RANK``/``LOCAL_RANK``); 1/0/0 alone.

    Under ``torchrun --nproc_per_node=N`` (``WORLD_SIZE`` > 1) each process joins a process group
    (:func:`process_group`), trains on ``cuda:LOCAL_RANK`` (or the CPU) and wraps the network in
    ``DistributedDataParallel`` (:func:`parallel_network`). The contrastive loss needs 4 whole groups per
    call, so a batch is not split across ranks: every rank trains on its own batch of ``train.batch_size``
    crops and one optimisation step sees N x ``train.batch_size`` crops (:func:`train_step`). Only rank 0
    writes the checkpoint, the final weights, dvclive and the progress bar.
    """

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


def run_fingerprint(cfg: Params) -> str:
    """Hash of every param that shapes the optimisation (:data:`FINGERPRINTED`, and ``train`` but for
    :data:`NOT_FINGERPRINTED`); a checkpoint resumes only under the same one."""
    params = as_dict(cfg)
    relevant = {key: params[key] for key in FINGERPRINTED}
    relevant["train"] = {k: v for k, v in params["train"].items() if k not in NOT_FINGERPRINTED}
    return digest_value(relevant)[:16]


def training_identity(cfg: Params, pairs: list[MaskedPair], autoencoder: Path | None = None) -> dict[str, str]:
    """What a checkpoint must share with this run to be resumed: ``params`` (:func:`run_fingerprint`),
    ``images`` and ``masks`` (content digests of every pair's infrared/visible images and masks, by id); for
    RFN-Nest trained on a given auto-encoder, that file's content (``autoencoder``)."""
    images = {f"{kind}/{p.id}": path for p in pairs for kind, path in (("ir", p.ir), ("vi", p.vi))}
    masks = {f"{kind}/{p.id}": path for p in pairs for kind, path in (("ir", p.ir_mask), ("vi", p.vi_mask))}
    identity = {"params": run_fingerprint(cfg), "images": digest_files(images), "masks": digest_files(masks)}
    if autoencoder is not None:
        identity["autoencoder"] = digest_files({"autoencoder": autoencoder})
    return identity


def load_training_state(path: Path, identity: Mapping[str, str], world_size: int = 1) -> dict[str, Any] | None:
    """The checkpoint at ``path`` when it belongs to this run (same :func:`training_identity` and process
    count: it holds every rank's RNG stream, so it resumes only under the same N), else None with a warning
    naming what changed. CheckpointError for an unreadable file or NaN weights."""
    ckpt = load_resume(path, identity, remedy="delete it to train from scratch")
    if ckpt is None:
        return None
    if not is_finite(list(ckpt["state_dict"].values())):
        raise CheckpointError(
            f"{path} holds NaN/inf weights (step {ckpt['step']}): delete it, lower train.lr and train from scratch"
        )
    saved_world = ckpt.get("world_size", 1)  # single-process checkpoints record no world size
    if saved_world != world_size:
        log.warning(
            "ignoring %s: written under other params (%d processes, now %d); training from scratch",
            path,
            saved_world,
            world_size,
        )
        return None
    log.info("resuming from %s at step %d", path, ckpt["step"])
    return ckpt


@contextlib.contextmanager
def process_group(world: World, dev: torch.device) -> Iterator[torch.device]:
    """This process's device, inside the launch's process group: alone, ``dev`` as is; under torchrun,
    ``cuda:LOCAL_RANK`` (or the CPU) in an NCCL (gloo on the CPU) group, left at the end if joined here."""
    if not world.distributed:
        yield dev
        return
    if dev.type == "cuda":
        dev = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(dev)
    owns_group = not torch.distributed.is_initialized()
    if owns_group:
        torch.distributed.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    try:
        yield dev
    finally:
        if owns_group:
            torch.distributed.destroy_process_group()


@dataclass
class TrainingRun:
    """One training run: what :func:`set_up` builds, and the progress the loop makes."""

    cfg: Params
    root: Path
    world: World
    dev: torch.device
    pairs: list[MaskedPair]
    dataset: CropDataset
    plan: BatchPlan
    total: int  # the step the run ends at
    model: nn.Module
    loss_fn: TotalLoss
    optimizer: torch.optim.Optimizer
    identity: dict[str, str]  # training_identity, the same on every rank
    fusion_start: int = 0  # the first step of the fusion stage (RFN-Nest's auto-encoder stage comes before)
    autoencoder_loss: AutoencoderLoss | None = None
    stage: str = "fusion"  # what the optimiser trains now: "autoencoder" or "fusion"
    forward: nn.Module | None = None  # what a step calls (parallel_network), set after resuming
    step: int = 0
    saved_step: int | None = None  # the step last.pt holds for this run; None: none yet
    terms: dict[str, Tensor] | None = None  # the last computed loss terms, named when training stops
    bad: int = 0  # consecutive non-finite losses

    @property
    def checkpoint(self) -> Path:
        return self.root / CHECKPOINT

    @property
    def final(self) -> Path:
        return self.root / FINAL

    @property
    def live_dir(self) -> Path:
        return self.root / LIVE_DIR

    @property
    def features(self) -> bool:
        """The loss compares the network's intermediate features (L_RFN): the network returns them."""
        return needs_features(self.cfg.loss.terms)

    def stage_at(self, step: int) -> str:
        """The stage step ``step`` belongs to."""
        return "autoencoder" if step < self.fusion_start else "fusion"

    @property
    def per_image(self) -> bool:
        """Min-max normalisation of the output per image, else over the batch (``train.compat``, the routine)."""
        return routine_of(self.cfg.train).per_image_output

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast where ``train.precision`` resolves to bf16, on CUDA or the CPU (:func:`training_autocast`)."""
        return training_autocast(self.cfg.train, self.dev)


def train(cfg: Params, root: str | Path, *, max_steps: int | None = None, device: str = "auto") -> Path:
    """Train on ``train.dataset``/``train.split`` under ``root``; returns the path of the final weights.

    ``max_steps`` (else ``train.max_steps``, else all epochs) caps the number of optimisation steps (of the
    fusion stage). ``train.stage: published`` trains nothing: the final weights are RFN-Nest's published ones.
    """
    root = Path(root)
    world = World.from_env()
    if not TRAIN_STAGES[cfg.train.stage].steps:  # nothing to train: one process writes the published weights
        if world.main:
            write_published(
                cfg, root, final=root / FINAL, checkpoints=root / CHECKPOINT.parent, live_dir=root / LIVE_DIR
            )
        return root / FINAL
    with process_group(world, resolve_device(device)) as dev:
        return run_training(cfg, root, max_steps, dev, world)


def run_training(cfg: Params, root: Path, max_steps: int | None, dev: torch.device, world: World) -> Path:
    """The recipe: set up, resume, then per batch a step, its log and the periodic checkpoint; finish."""
    run = set_up(cfg, root, max_steps, dev, world)
    state = resume_from_checkpoint(run)
    run.forward = parallel_network(run)
    loader = batch_loader(run)
    announce(run)
    run.model.train()
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []), live_log(run, state) as live:
        seed_streams(run, state)
        window = TermMeans()  # a term skipped at some steps is averaged over the others
        bar = progress_bar(run, loader)
        for batch in bar:
            follow_stage(run)
            if (terms := train_step(run, batch)) is not None:
                window.add(terms)
            run.step += 1
            if world.main and window and (run.step % cfg.train.log_every == 0 or run.step == run.total):
                log_terms(run, live, bar, window.pop())  # terms absent from the whole window are not logged
            if run.step % cfg.train.checkpoint_every == 0:
                save_progress(run)
        finish(run)
    return write_weights(run)


def training_set(train: Train, root: Path) -> tuple[list[MaskedPair], CropDataset]:
    """The training pairs (those without objects left out under the authors' routine) and their crops, as
    ``train.compat``'s routine reads them (flips, input scaling)."""
    routine = routine_of(train)
    pairs = find_training_pairs(root, train.dataset, train.split)
    pairs = pairs_with_objects(pairs) if routine.skip_maskless else pairs
    dataset = CropDataset(
        pairs,
        crop=train.crop,
        crops_per_image=train.crops_per_image,
        flip=training_flip(train),
        seed=train.seed,
        scaling=routine.scaling,
    )
    return pairs, dataset


def set_up(cfg: Params, root: Path, max_steps: int | None, dev: torch.device, world: World) -> TrainingRun:
    """The data, the network (seeded by ``train.seed``; RFN-Nest's auto-encoder loaded where the run starts
    from one), the loss, Adam over what the first stage trains and this run's identity.

    Under torchrun a run has ``epochs x batches_per_epoch // N`` steps (``train.epochs`` still means passes
    over the data; ``max_steps`` and ``train.checkpoint_every`` count optimisation steps; an auto-encoder
    stage adds its own before them, uncapped), and rank 0 reads the inputs for the identity once: every rank
    takes the same decision to resume.
    """
    train = cfg.train
    images_per_batch = check_batch_layout(train.batch_size, train.crops_per_image)
    pairs, dataset = training_set(train, root)
    plan = BatchPlan(len(pairs), images_per_batch, train.seed)
    if plan.repeats > 1:
        log.warning("%d pairs < %d images per batch: images repeat inside a batch", len(pairs), images_per_batch)
    cap = max_steps if max_steps is not None else train.max_steps
    ae_steps = autoencoder_steps(cfg, plan.batches_per_epoch, world.size)
    total = train.epochs * plan.batches_per_epoch // world.size
    total = total if cap is None else min(total, cap)

    model = build_network(cfg.arch, train.seed)
    if (autoencoder := starting_autoencoder(cfg, root)) is not None:
        load_autoencoder(model, autoencoder)
    model = model.to(dev)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(train.seed)  # random VGG (smoke runs) from the run's seed
        loss_fn = build_loss(cfg).to(dev)
    optimizer = torch.optim.Adam(fusion_parameters(model), lr=train.lr)
    if dev.type == "cuda":
        model = model.to(memory_format=torch.channels_last)

    identity = [training_identity(cfg, pairs, autoencoder) if world.main else None]
    if world.distributed:
        torch.distributed.broadcast_object_list(identity, src=0)
    run = TrainingRun(
        cfg,
        root,
        world,
        dev,
        pairs=pairs,
        dataset=dataset,
        plan=plan,
        total=ae_steps + total,
        model=model,
        loss_fn=loss_fn,
        optimizer=optimizer,
        identity=identity[0],
        fusion_start=ae_steps,
    )
    if ae_steps:  # RFN-Nest's auto-encoder stage comes first
        run.autoencoder_loss = AutoencoderLoss(lam=cfg.loss.autoencoder_lambda, form=cfg.loss.rfn_form).to(dev)
        follow_stage(run)
    if world.main:
        for path in (run.checkpoint, run.final):
            remove_stale_temps(path)
    return run


def resume_from_checkpoint(run: TrainingRun) -> dict[str, Any] | None:
    """Continue from ``last.pt`` when it is this run's (:func:`load_training_state`) and holds no more steps than
    this run ends at (a lowered ``max_steps`` or ``epochs`` starts over): weights, optimiser and step, on every
    rank from the same checkpoint; the checkpoint (for its RNG streams), or None."""
    state = load_training_state(run.checkpoint, run.identity, run.world.size)
    if state is not None and state["step"] > run.total:
        log.warning(
            "ignoring %s: it holds step %d, beyond this run's last step %d (train.max_steps or epochs lowered); "
            "training from scratch",
            run.checkpoint,
            state["step"],
            run.total,
        )
        state = None
    if state is not None:
        run.model.load_state_dict(state["state_dict"])
        run.step = run.saved_step = state["step"]
        follow_stage(run)
        if state.get("stage", "fusion") == run.stage:  # at a stage's first step, its optimiser starts afresh
            run.optimizer.load_state_dict(state["optimizer"])
    return state


def follow_stage(run: TrainingRun) -> None:
    """Switch to the stage the current step belongs to (:meth:`TrainingRun.stage_at`) when it is not the one
    being trained."""
    if run.stage_at(run.step) != run.stage:
        use_stage(run, run.stage_at(run.step))


def use_stage(run: TrainingRun, stage: str) -> None:
    """From now on train ``stage``: a fresh Adam over its parameters (the others frozen where the fusion stage
    trains part of the network); mid-run, also the forward the steps call."""
    if stage == "autoencoder":
        params = autoencoder_parameters(run.model)
        for p in run.model.parameters():
            p.requires_grad_(True)
    else:
        params = fusion_parameters(run.model)
    run.optimizer = torch.optim.Adam(params, lr=run.cfg.train.lr)
    run.stage = stage
    if run.forward is not None:
        run.forward = parallel_network(run)
    log.info("step %d: training the %s stage (%d parameters)", run.step, stage, sum(p.numel() for p in params))


def parallel_network(run: TrainingRun) -> nn.Module:
    """What a step calls: the network, under torchrun in ``DistributedDataParallel`` (wrapped after resuming,
    so every rank starts from the same weights), compiled with ``train.compile``.

    DDP averages the N ranks' gradients (the mean of the N per-batch losses; ``train.lr`` is used as
    configured) and broadcasts rank 0's buffers before every forward: BatchNorm normalises each rank's batch
    with that batch's statistics, and the running statistics are rank 0's.
    """
    net: nn.Module = NestAutoEncoder(run.model) if run.stage == "autoencoder" else run.model
    if run.world.distributed:
        net = DistributedDataParallel(net, device_ids=[run.dev.index] if run.dev.type == "cuda" else None)
    return torch.compile(net) if run.cfg.train.compile else net


def batch_loader(run: TrainingRun) -> DataLoader:
    """Batches of steps ``run.step`` to ``run.total - 1``. The ranks share the single-process stream of
    batches: step ``s`` of rank ``r`` takes batch ``s·N + r`` (:class:`StepSampler`), so no two ranks see the
    same crops."""
    train = run.cfg.train
    return DataLoader(
        run.dataset,
        batch_sampler=StepSampler(run.plan, run.step, run.total, world_size=run.world.size, rank=run.world.rank),
        collate_fn=collate_crops,
        num_workers=loader_workers(train.num_workers, "train.num_workers"),
        pin_memory=run.dev.type == "cuda",
        generator=torch.Generator().manual_seed(train.seed),  # the loader draws its base seed here, not globally
    )


def announce(run: TrainingRun) -> None:
    """Log what the run trains on, from which step to which, in which precision, and where it writes."""
    train, world = run.cfg.train, run.world
    if world.distributed:
        log.info(
            "rank %d of %d: %d crops per rank and step (%d per step in all), batches %d·s+%d",
            world.rank,
            world.size,
            train.batch_size,
            world.size * train.batch_size,
            world.size,
            world.rank,
        )
    log.info(
        "training %s/%s (%s routine, %s): %d pairs, %d batches/epoch, steps %d..%d on %s; checkpoint %s, weights %s, "
        "logs %s",
        train.dataset,
        train.split,
        train.compat,
        training_precision(train, run.dev),
        len(run.pairs),
        run.plan.batches_per_epoch,
        run.step,
        run.total,
        run.dev,
        run.checkpoint,
        run.final,
        run.live_dir,
    )


def progress_bar(run: TrainingRun, loader: DataLoader) -> tqdm:
    """The batches, with a progress bar on rank 0 that counts from the step the run resumes at."""
    return tqdm(
        loader,
        total=run.total,
        initial=run.step,
        desc="train",
        unit="step",
        dynamic_ncols=True,
        disable=not run.world.main,
    )


def live_log(run: TrainingRun, state: dict[str, Any] | None) -> contextlib.AbstractContextManager:
    """dvclive on rank 0 (the loss terms of its own batch, and ``pairs``: how many pairs the run trains on),
    nothing on the others. On resuming, the rows that the interrupted run logged after its checkpoint are
    dropped first, so no step is logged twice."""
    if not run.world.main:
        return contextlib.nullcontext()
    if state is not None:
        trim_live_history(run.live_dir, run.step)
        rebuild_live_summary(run.live_dir)  # DVC deleted metrics.json: a run with nothing left keeps its losses
    live = Live(dir=str(run.live_dir), resume=state is not None, save_dvc_exp=False, dvcyaml=False)
    live.summary["pairs"] = len(run.pairs)
    return live


def seed_streams(run: TrainingRun, state: dict[str, Any] | None) -> None:
    """Seed the global RNG the steps draw from (the contextual loss samples positions): each rank its own
    stream (``train.seed`` + rank); a resumed run restores the stream of its rank that the checkpoint holds."""
    torch.manual_seed(run.cfg.train.seed + run.world.rank)
    if state is not None:
        set_rng_state(state["rng_ranks"][run.world.rank] if run.world.distributed else state["rng"], run.dev)


def train_step(run: TrainingRun, batch: Tensor) -> dict[str, Tensor] | None:
    """One optimisation step on ``batch`` (B, 4, crop, crop: infrared, visible Y, their masks): the network,
    the total loss of ``loss.terms`` (Eq. 20 by default) and Adam; the loss terms, or None for a skipped batch
    (:func:`skip_batch`). In RFN-Nest's auto-encoder stage, :func:`autoencoder_step` instead."""
    batch = batch.to(run.dev, non_blocking=True)
    if run.dev.type == "cuda":
        batch = batch.contiguous(memory_format=torch.channels_last)
    if run.stage == "autoencoder":
        return autoencoder_step(run, batch)
    ir, vi, ir_mask, vi_mask = batch.split(1, dim=1)
    try:
        with run.autocast():
            raw, features = (
                run.forward(ir=ir, vi=vi, features=True) if run.features else (run.forward(ir=ir, vi=vi), None)
            )
            fused = normalise_output(raw.float(), per_image=run.per_image)
            run.terms = run.loss_fn(fused, ir=ir, vi=vi, ir_mask=ir_mask, vi_mask=vi_mask, features=features)
    except NonFiniteLossError as err:
        skip_batch(run, err)
        return None
    return update(run, run.terms["total"])


def autoencoder_step(run: TrainingRun, batch: Tensor) -> dict[str, Tensor] | None:
    """One step of RFN-Nest's auto-encoder stage: the infrared and visible crops of ``batch`` (on the device) as
    one batch of single images, reconstructed and scored by the auto-encoder loss; None for a skipped batch."""
    ir, vi, _, _ = batch.split(1, dim=1)
    images = torch.cat((ir, vi))
    try:
        with run.autocast():
            run.terms = run.autoencoder_loss(run.forward(images).float(), images)
    except NonFiniteLossError as err:
        skip_batch(run, err)
        return None
    return update(run, run.terms["autoencoder_total"])


def update(run: TrainingRun, loss: Tensor) -> dict[str, Tensor]:
    """Backpropagate ``loss`` and take one Adam step; the step's loss terms."""
    run.bad = 0
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    run.optimizer.step()
    return run.terms


def skip_batch(run: TrainingRun, err: NonFiniteLossError) -> None:
    """A batch whose loss is non-finite is skipped; TrainingStopped when the weights are no longer finite (no
    later step can recover) or after ``train.max_nonfinite`` consecutive skips (on any rank: torchrun ends the
    others). Under torchrun the other ranks wait in the gradient all-reduce, so this rank joins it with a zero
    gradient (their gradients are still applied; a skip cannot be agreed on without one more collective)."""
    run.bad += 1
    log.warning("step %d skipped (%d in a row): %s", run.step, run.bad, err)
    if not is_finite([*run.model.parameters(), *run.model.buffers()]):
        raise stopped(run, f"the weights or BatchNorm statistics are NaN/inf ({err})", DIVERGED) from err
    max_bad = run.cfg.train.max_nonfinite
    if run.bad >= max_bad:
        raise stopped(
            run,
            f"{run.bad} consecutive non-finite losses (train.max_nonfinite={max_bad}; {err})",
            "check the inputs named there, lower train.lr or raise train.max_nonfinite",
        ) from err
    run.terms = None
    if run.world.distributed:
        run.optimizer.zero_grad(set_to_none=True)
        (torch.stack([p.sum() for p in run.model.parameters()]).sum() * 0).backward()
        run.optimizer.step()


def log_terms(run: TrainingRun, live: Live, bar: tqdm, means: Mapping[str, float]) -> None:
    """The window's mean loss terms and the learning rate to dvclive at this step; the main ones on the bar."""
    live.step = run.step
    for name, value in means.items():
        live.log_metric(f"train/{name}", value)
    live.log_metric("train/lr", run.optimizer.param_groups[0]["lr"])
    live.next_step()
    shown = ("total", "pixel", "rfn", "contrast", "autoencoder_total")
    bar.set_postfix({k: f"{means[k]:.4g}" for k in shown if k in means})


def save_progress(run: TrainingRun) -> None:
    """Write ``last.pt`` (model, optimiser, step, RNG state, identity); TrainingStopped instead of saving
    NaN/inf weights. Collective under torchrun: every rank's RNG state is gathered, so each resumes its own
    stream, and saved with the world size; rank 0 writes."""
    if not is_finite([*run.model.parameters(), *run.model.buffers()]):
        raise stopped(run, "the weights or BatchNorm statistics are NaN/inf, not saved", DIVERGED)
    rng, extra = rng_state(run.dev), {}
    if run.world.distributed:
        states: list[Any] = [None] * run.world.size
        torch.distributed.all_gather_object(states, rng)
        extra = {"world_size": run.world.size, "rng_ranks": states}
    if run.world.main:
        save_checkpoint(
            run.checkpoint,
            run.model,
            run.cfg.arch,
            optimizer=run.optimizer.state_dict(),
            step=run.step,
            stage=run.stage,
            rng=rng,
            fingerprint=run.identity,
            **extra,
        )
    run.saved_step = run.step


def stopped(run: TrainingRun, problem: str, remedy: str) -> TrainingStopped:
    """Training ends here: the step, the problem, the last loss terms, the checkpoint kept, what to do."""
    last = "none computed"
    if run.terms is not None:
        values = torch.stack(list(run.terms.values())).tolist()
        last = ", ".join(f"{k}={v:.4g}" for k, v in zip(run.terms, values))
    kept = "no checkpoint was written"
    if run.saved_step is not None:
        kept = f"{run.checkpoint} resumes at step {run.saved_step}"
    return TrainingStopped(
        f"step {run.step}: {problem} (last loss terms: {last}); {kept} (the last finite state); {remedy}"
    )


def finish(run: TrainingRun) -> None:
    """After the last step: under torchrun every rank takes rank 0's BatchNorm running statistics (DDP keeps
    the parameters equal), so every replica equals the saved weights; then ``last.pt``."""
    if run.world.distributed:
        for buffer in run.model.buffers():
            torch.distributed.broadcast(buffer, src=0)
    save_progress(run)


def write_weights(run: TrainingRun) -> Path:
    """The final weights (``models/occo.pt``), written by rank 0; they exist when this returns on any rank."""
    if run.world.main:
        save_checkpoint(run.final, run.model, run.cfg.arch, step=run.step, fingerprint=run.identity)
        log.info("wrote %s (step %d) and %s; metrics in %s", run.final, run.step, run.checkpoint, run.live_dir)
    if run.world.distributed:
        torch.distributed.barrier()
    return run.final
