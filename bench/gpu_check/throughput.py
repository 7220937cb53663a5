"""Steps 4 and 5: fusion throughput at 640x480 and metric-suite throughput at 640x480 and 768x576.

Fusion (``fuse_y``, random-init network, eval mode, inputs already on the device): pairs/s at batch
1, 8 and 32 in fp32, bf16 autocast and bf16 + channels_last, against the public test routine's rule
(``arch.compat: official``: one image per forward, BatchNorm on its own statistics) in the same run.
Then the parts of ``fuse_folder`` (what ``occo fuse`` runs) one by one on the MSRS pairs, to say what
limits it: PNG decode + colour conversion + PNG encode on the CPU (one thread, as ``fuse_folder``),
host<->device transfer of a batch, and the whole ``fuse_folder`` at batch 8.

Metrics (``compute_metrics``, float64, inputs on the device): triples/s for the whole suite at batch 8
and 32, on real MSRS (640x480) and TNO (768x576) grey levels with the mean baseline as the fused
image; ``evaluate_pairs`` (``occo evaluate``'s engine, PNG decode included) on the MSRS pairs; both
projected to the MSRS test split's 361 pairs. The dry run: tiny sizes, batch 1.
"""

from __future__ import annotations

import functools
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from bench.gpu_check.context import DONE, Context, Row, mib, peak_mib, real_pairs, reset_peak
from bench.train import measure
from occo.config import override
from occo.data import find_pairs, load_pair, make_synthetic, rgb_to_ycbcr, save_png, to_float
from occo.metrics.evaluate import BASELINES, evaluate_pairs
from occo.metrics.suite import METRICS, compute_metrics, grey_levels
from occo.nn import build_model, fuse_y
from occo.nn.fuse import colourise, fuse_folder
from occo.train.data import luminance

MSRS_TEST_PAIRS = 361
"""Pairs in MSRS's official test split (the 10-second target)."""


def pairs_of_size(ctx: Context, dataset: str, size: tuple[int, int], n: int) -> tuple[list, str]:
    """Up to ``n`` real pairs of ``dataset`` whose images are (H, W) ``size``, else ``n`` synthetic ones."""
    found = [p for p in real_pairs(ctx, dataset, 100) if image_hw(p.ir) == size][:n]
    if found:
        return found, f"{len(found)} {dataset} pairs"
    folder = ctx.work / f"synthetic_{size[1]}x{size[0]}"
    if not (folder / "train").is_dir():
        make_synthetic(folder, n_train=n, n_test=0, height=size[0], width=size[1])
    return find_pairs(ir=folder / "train" / "ir", vi=folder / "train" / "vi"), f"{n} synthetic pairs"


def image_hw(path: Path) -> tuple[int, int]:
    """(H, W) of an image file, from its header."""
    with Image.open(path) as im:
        return im.height, im.width


def stacked(images: list[torch.Tensor], batch: int, size: tuple[int, int], device: str) -> torch.Tensor:
    """``batch`` images (cycling through ``images``) as one (batch, ...) tensor of (H, W) ``size`` on ``device``."""
    x = torch.stack([images[i % len(images)] for i in range(batch)])
    if tuple(x.shape[-2:]) != size:  # the dry run's tiny size
        x = F.interpolate(x, size=size, mode="area")
    return x.to(device)


def fusion(ctx: Context) -> Iterator[Row]:
    dev = torch.device(ctx.device)
    size = ctx.pick((480, 640), (120, 160))
    batches = ctx.pick((1, 8, 32), (1, 2))
    warmup, repeats = ctx.pick((2, 5), (0, 1))
    pairs, source = pairs_of_size(ctx, "MSRS", (480, 640), ctx.pick(14, 1))
    loaded = [load_pair(p) for p in pairs]
    ir_y = [luminance(ir) for ir, _ in loaded]
    vi_y = [luminance(vi) for _, vi in loaded]
    params = ctx.load_params()
    arch = params.arch
    model = build_model(arch, seed=0).to(dev).eval()
    ir, vi = (stacked(y, max(batches), size, ctx.device) for y in (ir_y, vi_y))
    precisions = [("fp32", False, False)] + ctx.pick([("bf16", True, False), ("bf16 + channels_last", True, True)], [])
    rates: dict[str, float] = {}
    peaks: dict[str, float | None] = {}
    for label, bf16, channels_last in precisions:
        net = model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        for b in batches:
            x, y = (t[:b].contiguous(memory_format=torch.channels_last) if channels_last else t[:b] for t in (ir, vi))
            reset_peak(ctx.device)
            t, _ = measure(functools.partial(run_fuse, net, ir=x, vi=y, bf16=bf16), dev, warmup, repeats)
            rates[f"{label} b{b}"] = b / t
            peaks[f"{label} b{b}"] = peak_mib(ctx.device)
    model = model.to(memory_format=torch.contiguous_format)
    official = build_model(override(params, {"arch.compat": "official"}).arch, seed=0).to(dev).eval()
    b = batches[-1] if ctx.dry else 8
    for label, bf16 in [("fp32", False)] + ctx.pick([("bf16", True)], []):
        t, _ = measure(functools.partial(run_fuse, official, ir=ir[:b], vi=vi[:b], bf16=bf16), dev, warmup, repeats)
        rates[f"official {label}"] = b / t
    h, w = size
    best = max((k for k in rates if not k.startswith("official")), key=rates.get)
    cells = "; ".join(
        f"{label}: " + " / ".join(f"{rates[f'{label} b{b}']:,.1f}" for b in batches) for label, _, _ in precisions
    )
    official_cells = ", ".join(f"{k.split()[1]} {v:,.1f}" for k, v in rates.items() if k.startswith("official"))
    yield Row(
        f"4 fusion {w}x{h} (fuse_y on the device)",
        DONE,
        f"pairs/s at batch {' / '.join(map(str, batches))}: {cells}; official one-image rule (batch {b}): "
        f"{official_cells}; best {best} {rates[best]:,.1f} = x{rates[best] / rates['official fp32']:.1f} the "
        f"official fp32 rule; peak {mib(peaks[best])} ({source}, random-init {arch.compat} network)",
        {"pairs_s": rates, "best": best, "peak_mib": peaks},
    )
    yield pipeline(ctx, model, pairs, rates)


def run_fuse(model: torch.nn.Module, *, ir: torch.Tensor, vi: torch.Tensor, bf16: bool) -> torch.Tensor:
    """``fuse_y``, under bf16 autocast when asked."""
    if not bf16:
        return fuse_y(model, ir=ir, vi=vi)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        return fuse_y(model, ir=ir, vi=vi)


def pipeline(ctx: Context, model: torch.nn.Module, pairs: list, rates: dict[str, float]) -> Row:
    """``fuse_folder``'s parts and the whole of it, in pairs/s, at its batch size; which part limits it."""
    dev = torch.device(ctx.device)
    batch = ctx.pick(8, 1)
    (h, w), n = load_pair(pairs[0])[0].shape[:2], len(pairs)

    def decode_encode(pair, out: Path) -> None:
        """fuse_folder's CPU work for one pair: decode, Y and YCbCr, colourise a fused Y, encode the PNG."""
        ir, vi = load_pair(pair)
        vi_t = to_float(vi)
        save_png(out / f"{pair.id}.png", colourise(luminance(ir), rgb_to_ycbcr(vi_t) if vi_t.shape[0] == 3 else vi_t))

    with tempfile.TemporaryDirectory(dir=ctx.work) as tmp:
        start = time.perf_counter()
        for pair in pairs:
            decode_encode(pair, Path(tmp))
        cpu_rate = n / (time.perf_counter() - start)
        host = torch.rand(2, batch, 1, h, w)
        t, _ = measure(lambda: host.to(dev)[0].cpu(), dev, 1, 3)  # both inputs in, the fused output back
        transfer_rate = batch / t

        def whole_folder() -> None:  # the random-init model stands for a checkpoint: its PNGs record this label
            fuse_folder(
                model,
                pairs,
                Path(tmp) / "fused",
                checkpoint_sha256="gpu-check random init",
                device=dev,
                batch_size=batch,
                overwrite=True,
            )

        if not ctx.dry:  # warm-up
            whole_folder()
        start = time.perf_counter()
        whole_folder()
        whole = n / (time.perf_counter() - start)
    parts = {"decode + encode (CPU, 1 thread)": cpu_rate, "transfer": transfer_rate}
    computes = {
        f"compute {k.removesuffix(f' b{batch}')}": v
        for k, v in rates.items()
        if k.endswith(f" b{batch}") and not k.startswith("official")
    }
    limit = min({**parts, **computes}, key={**parts, **computes}.get)
    return Row(
        "4 fusion pipeline (fuse_folder on the MSRS pairs)",
        DONE,
        f"pairs/s: whole fuse_folder (fp32) at batch {batch} {whole:,.1f} ({n} pairs of {w}x{h}); its parts: "
        + ", ".join(f"{k} {v:,.1f}" for k, v in parts.items())
        + ", "
        + ", ".join(f"{k} {v:,.1f}" for k, v in computes.items())
        + f"; the slowest part: {limit}",
        {
            "fuse_folder_pairs_s": whole,
            "decode_encode_pairs_s": cpu_rate,
            "transfer_pairs_s": transfer_rate,
            "batch": batch,
        },
    )


def grey_triples(pairs: list, size: tuple[int, int], batch: int, device: str) -> tuple[torch.Tensor, ...]:
    """(fused = mean baseline, infrared, visible) grey levels, (batch, H, W) float64 on ``device``."""
    levels = [[torch.from_numpy(grey_levels(img)).double() for img in load_pair(p)] for p in pairs]
    # rounded: the dry run's area-resized images must stay integer grey levels, as the suite requires
    a, b = (stacked([pair[k][None] for pair in levels], batch, size, device)[:, 0].round() for k in (0, 1))
    return BASELINES["mean"](a, b), a, b


def metrics(ctx: Context) -> Iterator[Row]:
    dev = torch.device(ctx.device)
    batches = ctx.pick((8, 32), (1,))
    warmup, repeats = ctx.pick((1, 3), (0, 1))
    for dataset, real_size in (("MSRS", (480, 640)), ("TNO", (576, 768))):
        size = ctx.pick(real_size, (real_size[0] // 4, real_size[1] // 4))
        pairs, source = pairs_of_size(ctx, dataset, real_size, ctx.pick(8, 1))
        rates, peaks = {}, {}
        for b in batches:
            f, a, v = grey_triples(pairs, size, b, ctx.device)
            reset_peak(ctx.device)
            t, _ = measure(functools.partial(compute_metrics, f, a, v), dev, warmup, repeats)
            rates[b], peaks[b] = b / t, peak_mib(ctx.device)
        best = max(rates, key=rates.get)
        text = (
            f"whole suite ({len(METRICS)} metrics, float64) triples/s at batch "
            f"{' / '.join(map(str, batches))}: {' / '.join(f'{r:,.1f}' for r in rates.values())}, "
            f"peak {mib(peaks[best])} ({source})"
        )
        figures: dict = {"triples_s": rates, "projected_361_s": MSRS_TEST_PAIRS / rates[best]}
        if dataset == "MSRS":
            e2e = evaluate_rate(ctx, pairs_of_size(ctx, "MSRS", real_size, ctx.pick(14, 1))[0])
            figures.update(evaluate_pairs_s=e2e["rate"], projected_361_evaluate_s=MSRS_TEST_PAIRS / e2e["rate"])
            text += (
                f"; MSRS test split ({MSRS_TEST_PAIRS} pairs) projected: {figures['projected_361_s']:.1f} s "
                f"compute only, {figures['projected_361_evaluate_s']:.1f} s with evaluate_pairs "
                f"(PNG decode included; {e2e['rate']:,.1f} pairs/s on {e2e['n']} pairs)"
            )
        h, w = size
        yield Row(f"5 metrics {w}x{h}", DONE, text, figures)


def evaluate_rate(ctx: Context, pairs: list) -> dict:
    """``evaluate_pairs`` with the mean baseline on ``pairs`` (on a GPU after a warm-up run): pairs/s."""

    def run() -> None:
        evaluate_pairs(pairs, {"mean": None}, device=ctx.device, desc="evaluate_pairs")

    if not ctx.dry:  # warm-up
        run()
    start = time.perf_counter()
    run()
    return {"rate": len(pairs) / (time.perf_counter() - start), "n": len(pairs)}
