"""Step 1, equality before speed: the metric suite, ``occo fuse`` and one training step give the CPU's values on CUDA.

* 1a: ``evaluate_pairs`` (the engine of ``occo evaluate``) scores real TNO and MSRS pairs against the
  pixel baselines on the CPU and on CUDA, in float64: every value within a relative 1e-9.
* 1b: ``occo fuse`` (the CLI, one pair at a time) with a random-init checkpoint on the CPU and on CUDA:
  the 8-bit outputs within 1 grey level in fp32 (torch's default flags, as a user runs it); the largest
  difference with TF32 off and under bf16 autocast is reported beside it.
* 1c: the loss of one training step (``OCCOLoss`` on the network's output, train mode) on a fixed
  batch of 12 64x64 crops, CPU vs CUDA fp32 with TF32 off: relative difference within 1e-4. At 64x64
  every VGG19 map has at most 64x64 = 4096 positions, under the contextual loss's 65x65 sampling cap,
  so no random draw enters the loss (checked: two CPU runs under different seeds must agree, else the
  comparison is skipped as meaningless). The gradient norm and the losses with TF32 convs (torch's
  default, what training runs) and under bf16 autocast are reported.

In the CPU dry run each part runs its CPU half and reports it (narrow network, 1c at 32x32).
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bench.gpu_check.context import DONE, FAIL, PASS, SKIP, Context, Row, attempt, sample_pairs
from bench.train import synthetic_batch
from occo import cli
from occo.data import load_array
from occo.losses import OCCOLoss
from occo.metrics.evaluate import BASELINES, evaluate_pairs
from occo.metrics.suite import METRICS
from occo.nn import build_model, normalise_output, save_checkpoint
from occo.train.routine import routine_of

METRIC_RTOL = 1e-9
FUSE_LEVELS = 1
LOSS_RTOL = 1e-4
LOSS_BATCH = 12


def worst_relative_difference(cpu: pd.DataFrame, gpu: pd.DataFrame) -> dict[str, float]:
    """Largest relative difference per metric between two frames of the same (method, id) rows; NaN on both
    sides counts as equal, on one side only as NaN (not within any limit)."""
    worst = {}
    for m in METRICS:
        a, b = cpu[m].to_numpy(dtype=float), gpu[m].to_numpy(dtype=float)
        rel = np.abs(a - b) / np.maximum(np.abs(a), 1e-12)
        worst[m] = float(np.max(np.where(np.isnan(a) & np.isnan(b), 0.0, rel), initial=0.0))
    return worst


@contextlib.contextmanager
def tf32(enabled: bool) -> Iterator[None]:
    """TF32 for cuDNN convolutions and CUDA matmuls on or off inside the block; the previous flags after it."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def bf16_autocast(enabled: bool) -> contextlib.AbstractContextManager:
    return torch.autocast("cuda", dtype=torch.bfloat16) if enabled else contextlib.nullcontext()


def check(ctx: Context) -> Iterator[Row]:
    pairs, source = sample_pairs(ctx, ctx.pick(2, 1))
    other = ctx.pick("cuda", None)
    yield attempt("1a metrics CPU = CUDA", lambda: metrics_equal(ctx, pairs, source, other))
    yield attempt("1b occo fuse CPU = CUDA", lambda: fuse_equal(ctx, pairs, source, other))
    yield attempt("1c training-step loss CPU = CUDA", lambda: loss_equal(ctx, other))


def metrics_equal(ctx: Context, pairs: list, source: str, other: str | None) -> Row:
    """The CPU values and, with ``other``, that device's values and the comparison."""
    name = "1a metrics CPU = CUDA"
    methods = dict.fromkeys(BASELINES if other else ["mean"])
    start = time.perf_counter()
    cpu = evaluate_pairs(pairs, methods, device="cpu", batch_size=1, workers=2, desc="metrics cpu")
    t_cpu = time.perf_counter() - start
    what = f"{len(METRICS)} metrics x {len(cpu)} (baseline, pair) rows on {source}"
    if other is None:
        finite = int(np.isfinite(cpu[list(METRICS)].to_numpy(dtype=float)).sum())
        return Row(name, DONE, f"CPU half: {what} in {t_cpu:.1f} s ({finite} finite values)", {"cpu_s": t_cpu})
    gpu = evaluate_pairs(pairs, methods, device=other, batch_size="auto", workers=2, desc=f"metrics {other}")
    if list(zip(cpu["method"], cpu["id"])) != list(zip(gpu["method"], gpu["id"])):
        return Row(name, FAIL, f"CPU and {other} scored different (method, pair) rows")
    worst = worst_relative_difference(cpu, gpu)
    metric = max(worst, key=lambda m: -1.0 if np.isnan(worst[m]) else worst[m])
    bad = [m for m, e in worst.items() if not e <= METRIC_RTOL]  # NaN on one side only counts as bad
    return Row(
        name,
        FAIL if bad else PASS,
        f"{what}: largest relative difference {worst[metric]:.1e} ({metric}), limit {METRIC_RTOL:g}"
        + (f"; above it: {', '.join(bad)}" if bad else ""),
        {"max_rel": max(worst.values()), "worst_metric": metric},
    )


def fuse_equal(ctx: Context, pairs: list, source: str, other: str | None) -> Row:
    """``occo fuse`` on the CPU and, with ``other``, on that device in fp32 (default flags, TF32 off) and bf16."""
    name = "1b occo fuse CPU = CUDA"
    folder = ctx.work / "equality"
    arch = ctx.load_params().arch
    checkpoint = save_checkpoint(folder / "random.pt", build_model(arch, seed=0), arch)

    def fuse(device: str, out: Path) -> list[Path]:
        """``occo fuse --ir <file> --vi <file>`` per pair; the output PNGs."""
        paths = [out / f"{i:02d}_{p.id}.png" for i, p in enumerate(pairs)]
        for pair, path in zip(pairs, paths):
            cli.main(
                [
                    "fuse",
                    "--ir",
                    str(pair.ir),
                    "--vi",
                    str(pair.vi),
                    "--out",
                    str(path),
                    "--checkpoint",
                    str(checkpoint),
                    "--device",
                    device,
                    "--overwrite",
                ]
            )
        return paths

    start = time.perf_counter()
    cpu = fuse("cpu", folder / "reference_cpu")
    t_cpu = time.perf_counter() - start
    sizes = sorted({"x".join(map(str, load_array(p).shape[1::-1])) for p in cpu})
    if other is None:
        return Row(name, DONE, f"CPU half: {source} fused in {t_cpu:.1f} s ({', '.join(sizes)})", {"cpu_s": t_cpu})

    def largest_difference(paths: list[Path]) -> int:
        return max(
            int(np.abs(load_array(a).astype(np.int16) - load_array(b).astype(np.int16)).max())
            for a, b in zip(cpu, paths)
        )

    default = largest_difference(fuse(other, folder / other))
    with tf32(False):
        strict = largest_difference(fuse(other, folder / f"{other}_no_tf32"))
    with bf16_autocast(True):
        bf16 = largest_difference(fuse(other, folder / f"{other}_bf16"))
    return Row(
        name,
        PASS if default <= FUSE_LEVELS else FAIL,
        f"{len(cpu)} pairs ({', '.join(sizes)}), random-init {arch.compat} network: largest difference fp32 "
        f"{default} grey level(s) (limit {FUSE_LEVELS}; TF32 off: {strict}); bf16 autocast {bf16}",
        {"fp32_levels": default, "fp32_no_tf32_levels": strict, "bf16_levels": bf16},
    )


def loss_equal(ctx: Context, other: str | None) -> Row:
    """One step's loss on the CPU (twice, under two seeds) and, with ``other``, on that device."""
    name = "1c training-step loss CPU = CUDA"
    params = ctx.load_params()
    arch = params.arch
    model = build_model(arch, seed=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the random VGG19s, as the training loop builds them
        loss_fn = OCCOLoss.from_config(params)
    crop = ctx.pick(64, 32)
    batch = synthetic_batch(LOSS_BATCH, crop, torch.device("cpu"), seed=0)

    def step(device: str, *, seed: int = 0, bf16: bool = False) -> tuple[float, float]:
        """Loss and gradient norm of one forward + backward, from the same weights and batch."""
        torch.manual_seed(seed)
        net, loss = copy.deepcopy(model).to(device).train(), copy.deepcopy(loss_fn).to(device)
        ir, vi, ir_mask, vi_mask = (t.to(device) for t in batch)
        with bf16_autocast(bf16):
            fused = normalise_output(net(ir=ir, vi=vi).float(), per_image=routine_of(params.train).per_image_output)
            total = loss(fused, ir=ir, vi=vi, ir_mask=ir_mask, vi_mask=vi_mask)["total"]
        total.backward()
        grads = torch.stack([p.grad.norm() for p in net.parameters() if p.grad is not None])
        return float(total.detach()), float(torch.linalg.vector_norm(grads))

    start = time.perf_counter()
    cpu, cpu_grad = step("cpu")
    t_cpu = time.perf_counter() - start
    reseeded, _ = step("cpu", seed=1)
    what = f"batch {LOSS_BATCH} x {crop}x{crop}, {'narrow' if ctx.dry else 'full'} network, random VGG19"
    if reseeded != cpu:
        return Row(
            name,
            SKIP,
            f"{what}: the loss draws random numbers at this size (CPU seeds 0 and 1 give "
            f"{cpu:.6g} and {reseeded:.6g}); CPU and CUDA streams differ, nothing to compare",
        )
    if other is None:
        return Row(
            name,
            DONE,
            f"CPU half: {what}: loss {cpu:.6g}, gradient norm {cpu_grad:.4g} in {t_cpu:.1f} s "
            "(the same under two seeds)",
            {"loss": cpu, "cpu_s": t_cpu},
        )
    with tf32(False):
        strict, strict_grad = step(other)
    default, _ = step(other)
    bf16, _ = step(other, bf16=True)

    def rel(x: float, ref: float) -> float:
        return abs(x - ref) / max(abs(ref), 1e-30)

    figures = {
        "loss_cpu": cpu,
        "rel": rel(strict, cpu),
        "grad_rel": rel(strict_grad, cpu_grad),
        "rel_tf32": rel(default, cpu),
        "rel_bf16": rel(bf16, cpu),
    }
    return Row(
        name,
        PASS if figures["rel"] <= LOSS_RTOL else FAIL,
        f"{what}: loss {cpu:.6g}; {other} fp32 (TF32 off) relative difference {figures['rel']:.1e} (limit "
        f"{LOSS_RTOL:g}), gradient norm {figures['grad_rel']:.1e}; with TF32 convs {figures['rel_tf32']:.1e}, "
        f"bf16 autocast {figures['rel_bf16']:.1e}",
        figures,
    )
