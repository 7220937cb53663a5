"""Benchmark: one OCCO training step (network + pixel loss + contextual contrastive loss + Adam).

Everything is measured in one run, on CPU and (when present) CUDA, and printed as markdown tables
with ratios against a baseline measured in the same run:

1. training step time (median of ``--steps`` timed steps after ``--warmup``) and peak memory, for
   fp32 eager (NCHW; the loop itself makes every CUDA run channels_last, ``precision: fp32`` included),
   bf16 autocast + channels_last (CUDA only: what ``train.precision: auto`` runs there), and, with
   ``--compile``, each of them with ``torch.compile(model)`` (the network only, as the loop does);
2. the contextual contrastive loss's share: the full ``OCCOLoss`` forward+backward against the
   pixel loss alone (``OCCOLoss`` always computes the contrastive terms, even with ``omega6: 0``,
   so the pixel-only time calls its ``PixelLoss`` directly);
3. the public code's design, where the loss modules (VGG19 included) are rebuilt inside every batch,
   against our loss built once per run;
4. fusion throughput (pairs/s) of ``fuse_y`` at 640x480, eval mode, batch 1 (and 8 on CUDA).

Inputs are synthetic: random images and random rectangular object masks (every mask region present),
a randomly initialised network and a randomly initialised VGG19 (``train.vgg_random_init: true``),
so no dataset or weight file is needed; the code paths timed are those of a real step (data loading
excluded).

    python bench/train.py --size 64                        # quick CPU run
    python bench/train.py                                  # full size: --batch 12 --size 256 (the paper's crops)
    python bench/train.py --devices cuda --compile --steps 20   # full size on a GPU, with torch.compile
    python bench/train.py --devices cpu --steps 1 --warmup 0 --fuse-steps 1   # full size, one step on the CPU

``--warmup`` applies to every timed section (0: the first call, with its one-time allocations, is timed).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from occo.config import Params, load_params, override  # noqa: E402
from occo.losses import OCCOLoss  # noqa: E402
from occo.nn import build_model, fuse_y, normalise_output  # noqa: E402
from occo.train.routine import routine_of  # noqa: E402

CPU_BF16_SKIP = "skipped: a CUDA speed setting (train.precision auto is fp32 on the CPU; bf16 there only when asked)"


def random_vgg_params(path: Path) -> Params:
    """The params of ``path`` with a random-init VGG19 (no weight file) for the loss."""
    return override(load_params(path), {"train.vgg_random_init": True, "train.vgg_weights": None})


T = TypeVar("T")


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def measure(fn: Callable[[], T], dev: torch.device, warmup: int, repeats: int) -> tuple[float, T]:
    """Median wall time of ``fn`` (s) over ``repeats`` calls after ``warmup`` calls, and the last call's result."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync(dev)
        start = time.perf_counter()
        result = fn()
        sync(dev)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def timed(fn: Callable[[], object], dev: torch.device, warmup: int, steps: int) -> float:
    """Median wall time of ``fn`` in seconds over ``steps`` calls after ``warmup`` calls."""
    return measure(fn, dev, warmup, steps)[0]


def synthetic_batch(batch: int, size: int, dev: torch.device, seed: int) -> tuple[torch.Tensor, ...]:
    """ir, vi in [0, 1] and binary ir/vi masks (B, 1, size, size): one random rectangle per modality
    per image, the two overlapping, so the ir-unique, vi-unique, shared and background regions are
    all present (every contrastive term is computed, as on real data)."""
    g = torch.Generator().manual_seed(seed)
    ir, vi = torch.rand(2, batch, 1, size, size, generator=g)
    masks = torch.zeros(2, batch, 1, size, size)
    for b in range(batch):
        # ir rectangle in the left-centre, vi rectangle shifted right: they overlap in the middle
        h0, h1 = sorted(int(v) for v in torch.randint(size // 8, size - size // 8, (2,), generator=g))
        h1 = max(h1, h0 + size // 4)
        w = int(torch.randint(size // 8, size // 4, (1,), generator=g))
        masks[0, b, 0, h0:h1, w : w + size // 2] = 1
        masks[1, b, 0, h0:h1, w + size // 4 : w + 3 * size // 4] = 1
    return tuple(t.to(dev) for t in (ir, vi, masks[0], masks[1]))


class Step:
    """The training step of occo/train/loop.py on a fixed synthetic batch (no data loading)."""

    def __init__(
        self,
        params: Params,
        dev: torch.device,
        *,
        bf16: bool,
        compile: bool,
        batch: int,
        size: int,
        rebuild_loss: bool = False,
    ) -> None:
        self.params, self.dev, self.rebuild_loss = params, dev, rebuild_loss
        self.per_image = routine_of(params.train).per_image_output
        self.model = build_model(params.arch, seed=0).to(dev)
        self.loss_fn = OCCOLoss.from_config(params).to(dev)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=params.train.lr)
        self.channels_last = bf16  # the loop uses channels_last on CUDA, where it also runs bf16
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.forward = torch.compile(self.model) if compile else self.model
        self.autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
        ir, vi, ir_m, vi_m = synthetic_batch(batch, size, dev, seed=0)
        if self.channels_last:
            ir, vi, ir_m, vi_m = (t.contiguous(memory_format=torch.channels_last) for t in (ir, vi, ir_m, vi_m))
        self.batch = ir, vi, ir_m, vi_m
        self.model.train()

    def __call__(self) -> None:
        ir, vi, ir_m, vi_m = self.batch
        loss_fn = OCCOLoss.from_config(self.params).to(self.dev) if self.rebuild_loss else self.loss_fn
        with self.autocast():
            fused = normalise_output(self.forward(ir=ir, vi=vi).float(), per_image=self.per_image)
            terms = loss_fn(fused, ir=ir, vi=vi, ir_mask=ir_m, vi_mask=vi_m)
        self.optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
        self.optimizer.step()

    def fused_leaf(self) -> torch.Tensor:
        """A fused output as a leaf tensor, to time the loss alone."""
        ir, vi, _, _ = self.batch
        with torch.no_grad(), self.autocast():
            fused = normalise_output(self.forward(ir=ir, vi=vi).float(), per_image=self.per_image)
        return fused.detach().requires_grad_(True)

    def loss_only(self, fused: torch.Tensor, pixel_only: bool) -> Callable[[], None]:
        ir, vi, ir_m, vi_m = self.batch

        def run() -> None:
            fused.grad = None
            with self.autocast():
                if pixel_only:
                    value = self.loss_fn.pixel(fused, ir=ir, vi=vi)["pixel"]
                else:
                    value = self.loss_fn(fused, ir=ir, vi=vi, ir_mask=ir_m, vi_mask=vi_m)["total"]
            value.backward()

        return run


def table(header: tuple[str, ...], rows: list[tuple]) -> None:
    """Print a markdown table."""
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for r in rows:
        print("| " + " | ".join(str(c) for c in r) + " |")
    print()


def peak_memory(dev: torch.device) -> str:
    if dev.type == "cuda":
        return f"{torch.cuda.max_memory_allocated(dev) / 2**20:,.0f} MiB"
    return "—"


def rss_mib() -> float:
    """Peak resident set size of this process so far (Linux: ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=REPO / "params.yaml")
    parser.add_argument("--batch", type=int, default=12, help="images per step (4 groups of 3 by default)")
    parser.add_argument("--size", type=int, default=256, help="crop side (train.crop); 64 for a quick CPU run")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per configuration (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps before timing (compile happens here)")
    parser.add_argument("--devices", default="auto", help="'auto' (cpu, plus cuda when present) or e.g. 'cpu,cuda'")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile(model) (takes minutes)")
    parser.add_argument("--fuse-size", default="640x480", help="WxH of the fusion throughput pairs")
    parser.add_argument("--fuse-steps", type=int, default=3)
    args = parser.parse_args()
    if args.batch % 4:
        raise SystemExit("--batch must be a multiple of 4 (the contrastive loss's 4 groups)")
    logging.getLogger("occo.losses.vgg").setLevel(logging.ERROR)  # the random-VGG warning, once per build

    params = random_vgg_params(args.params)
    names = ["cpu", "cuda"] if args.devices == "auto" else [d.strip() for d in args.devices.split(",")]
    devices = [torch.device(n) for n in names if n != "cuda" or torch.cuda.is_available()]
    if "cuda" in names and not torch.cuda.is_available() and args.devices != "auto":
        print("cuda requested but not available: skipped")
    fw, fh = (int(v) for v in args.fuse_size.lower().split("x"))

    print(
        f"OCCO training step: batch {args.batch} x {args.size}x{args.size}, {args.steps} timed steps after "
        f"{args.warmup} warm-up, random-init network and VGG19, synthetic inputs and masks"
    )
    cpu = platform.processor() or platform.machine()
    print(
        f"torch {torch.__version__}, python {platform.python_version()}, {cpu}, {torch.get_num_threads()} CPU threads"
        + "".join(f", {torch.cuda.get_device_name(d)}" for d in devices if d.type == "cuda")
        + f", load average at start {os.getloadavg()[0]:.1f}"
    )
    print(
        f"params: arch.compat={params.arch.compat}, loss.cx_variant={params.loss.cx_variant}, "
        f"ablation.feature_space={params.ablation.feature_space}, omega6={params.omega6}\n"
    )

    step_rows, loss_rows, public_rows, fuse_rows, notes = [], [], [], [], []
    for dev in devices:
        configs = [("fp32 eager", False, False), ("bf16 autocast + channels_last", True, False)]
        if args.compile:
            configs += [("fp32 + torch.compile", False, True), ("bf16 + channels_last + torch.compile", True, True)]
        base_time = None
        for name, bf16, comp in configs:
            if bf16 and dev.type != "cuda":
                step_rows.append((dev.type, name, CPU_BF16_SKIP, "", ""))
                continue
            torch.manual_seed(0)
            if dev.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(dev)
            rss0 = rss_mib()
            step = Step(params, dev, bf16=bf16, compile=comp, batch=args.batch, size=args.size)
            t_compile = time.perf_counter()
            try:
                t = timed(step, dev, args.warmup, args.steps)
            except Exception as err:  # a failing compile must not hide the other results
                first = (str(err).splitlines() or [""])[0][:80]
                step_rows.append((dev.type, name, f"failed: {type(err).__name__}: {first}", "", ""))
                continue
            mem = peak_memory(dev) if dev.type == "cuda" else f"+{rss_mib() - rss0:,.0f} MiB RSS"
            if comp:
                warm = time.perf_counter() - t_compile - t * args.steps
                notes.append(f"{dev.type} {name}: {args.warmup} warm-up step(s) incl. compile took {warm:.0f} s")
            base_time = base_time or t
            step_rows.append((dev.type, name, f"{t * 1000:,.1f}", mem, f"x{base_time / t:.2f}"))

            if comp:
                continue
            # 2. contrastive share, in this precision, on the eager model
            fused = step.fused_leaf()
            t_full = timed(step.loss_only(fused, pixel_only=False), dev, args.warmup, args.steps)
            t_pix = timed(step.loss_only(fused, pixel_only=True), dev, args.warmup, args.steps)
            loss_rows.append(
                (
                    dev.type,
                    name,
                    f"{t * 1000:,.1f}",
                    f"{t_full * 1000:,.1f}",
                    f"{t_pix * 1000:,.2f}",
                    f"{(t_full - t_pix) / t_full:.1%}",
                    f"{(t_full - t_pix) / t:.1%}",
                )
            )

            # 3. public design: loss (with VGG19) rebuilt every batch
            step.rebuild_loss = True
            t_rebuild = timed(step, dev, args.warmup, args.steps)
            step.rebuild_loss = False
            build = functools.partial(lambda on: OCCOLoss.from_config(params).to(on), dev)
            t_build = timed(build, dev, args.warmup, args.steps)
            public_rows.append(
                (
                    dev.type,
                    name,
                    f"{t * 1000:,.1f}",
                    f"{t_rebuild * 1000:,.1f}",
                    f"{t_build * 1000:,.1f}",
                    f"x{t_rebuild / t:.2f}",
                    f"x{(t + t_build) / t:.3f}",
                )
            )
            del step, fused
            if dev.type == "cuda":
                torch.cuda.empty_cache()

        # 4. fusion throughput
        model = build_model(params.arch, seed=0).to(dev).eval()
        for batch in [1, 8] if dev.type == "cuda" else [1]:
            g = torch.Generator().manual_seed(1)
            ir, vi = (torch.rand(batch, 1, fh, fw, generator=g).to(dev) for _ in range(2))
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats(dev)
            t = timed(functools.partial(fuse_y, model, ir=ir, vi=vi), dev, min(args.warmup, 1), args.fuse_steps)
            fuse_rows.append(
                (
                    dev.type,
                    f"{batch}",
                    f"{t * 1000:,.1f}",
                    f"{batch / t:,.2f}",
                    peak_memory(dev) if dev.type == "cuda" else "—",
                )
            )
        del model

    print(f"### 1. Training step (batch {args.batch}, {args.size}x{args.size})\n")
    table(("device", "config", "step ms (median)", "peak memory", "speed vs fp32 eager"), step_rows)
    print(
        "Peak memory: CUDA torch.cuda.max_memory_allocated during the configuration; CPU the growth of the "
        "process's peak RSS while it ran (a high-water mark: later configurations show only growth beyond it)."
    )
    for n in notes:
        print(f"- {n}")
    print()
    print("### 2. Contextual contrastive loss's share (loss forward+backward on a fixed fused output)\n")
    table(
        (
            "device",
            "config",
            "step ms",
            "full loss ms",
            "pixel loss ms",
            "contrastive share of loss",
            "contrastive share of step",
        ),
        loss_rows,
    )
    print(
        "OCCOLoss computes the contrastive terms whatever omega6 (omega6: 0 only zeroes their weight), so the "
        "pixel-only time calls OCCOLoss.pixel (PixelLoss, Eq. 15-19) directly; share = (full - pixel) / full.\n"
    )
    print("### 3. Public code's design: loss modules rebuilt every batch vs built once\n")
    table(
        (
            "device",
            "config",
            "build once: step ms",
            "rebuild every step: step ms",
            "OCCOLoss build ms",
            "slow-down (measured)",
            "slow-down (step + build)",
        ),
        public_rows,
    )
    print(
        "'measured' compares two separately timed step medians, so step-time noise can hide a small build cost; "
        "'step + build' adds the separately timed build to the build-once step."
    )
    print(
        "The rebuild uses a random-init VGG19 (torchvision's init of both VGG19 trunks); the public code loads "
        "ImageNet weights instead, so each of its steps also reads the VGG19 weight file "
        "(vgg19-dcbb9e9d.pth, 548 MB) from disk, not counted here.\n"
    )
    print(f"### 4. Fusion throughput (fuse_y, {fw}x{fh}, eval mode, arch.compat={params.arch.compat})\n")
    table(("device", "batch", "ms per call (median)", "pairs/s", "peak memory"), fuse_rows)
    print(
        f"Process peak RSS: {rss_mib():,.0f} MiB; load average at end {os.getloadavg()[0]:.1f} "
        f"(above the thread count, other processes shared the CPU and timings are inflated and noisy)"
    )


if __name__ == "__main__":
    main()
