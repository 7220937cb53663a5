"""Step 2: the training step at the paper's size (batch 12, 256x256 crops, full network, full random VGG19).

One configuration per process: fp32 eager, bf16 autocast + channels_last, and each with
``torch.compile`` of the network (as ``train.compile`` does). It times ``bench/train.py``'s ``Step``
(the step of ``occo/train/loop.py`` on a fixed synthetic batch, Adam included): the first step alone
(with compilation when compiled), then the median of the timed steps after the warm-up. Peak memory is
``torch.cuda.max_memory_allocated`` over the configuration. The contrastive loss's share of the step
is (full ``OCCOLoss`` − pixel loss alone) forward + backward on a fixed fused output, over the step
time (eager configurations: compilation covers the network only, the loss is the same).
The dry run: fp32 eager, a narrow network, 32x32 crops, one timed step.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import torch

from bench.gpu_check.context import DONE, Context, Row, mib, peak_mib, reset_peak
from bench.train import Step, measure

CONFIGS = {
    (False, False): "fp32 eager",
    (True, False): "bf16 autocast + channels_last",
    (False, True): "fp32 + torch.compile",
    (True, True): "bf16 + channels_last + torch.compile",
}


def check(ctx: Context, *, bf16: bool, compile: bool) -> Iterator[Row]:
    config = CONFIGS[bf16, compile]
    dev = torch.device(ctx.device)
    params = ctx.load_params()
    batch, size = ctx.pick((12, 256), (12, 32))
    warmup, repeats = ctx.pick((2, 10), (0, 1))
    torch.manual_seed(0)
    reset_peak(ctx.device)
    step = Step(params, dev, bf16=bf16, compile=compile, batch=batch, size=size)
    start = time.perf_counter()
    measure(step, dev, 0, 1)  # the first step alone: allocations, cuDNN choices, compilation
    first = time.perf_counter() - start
    t, _ = measure(step, dev, warmup, repeats)
    peak = peak_mib(ctx.device)
    figures = {"step_ms": t * 1e3, "first_step_s": first, "peak_mib": peak}
    text = (
        f"{config}, batch {batch} x {size}x{size}: {t * 1e3:,.1f} ms/step (median of {repeats} after "
        f"1 + {warmup} warm-up), first step {first:.1f} s, peak {mib(peak)}"
    )
    if not compile:
        fused = step.fused_leaf()
        t_full, _ = measure(step.loss_only(fused, pixel_only=False), dev, warmup, repeats)
        t_pixel, _ = measure(step.loss_only(fused, pixel_only=True), dev, warmup, repeats)
        figures.update(contrastive_step=(t_full - t_pixel) / t, contrastive_loss=(t_full - t_pixel) / t_full)
        text += (
            f"; contrastive loss {figures['contrastive_step']:.0%} of the step "
            f"({figures['contrastive_loss']:.0%} of the loss)"
        )
    yield Row(f"2 training step, {config}", DONE, text, figures)
