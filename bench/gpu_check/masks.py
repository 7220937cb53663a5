"""Step 6: the masks stage's models at real size (random init) under the stage's autocast, and its memory bound.

The models are the stage's own (``occo.masks.models.load_models`` with ``masks.init: random``):
groundingdino-py's Grounding DINO Swin-T OGC with a bert-base-sized text encoder and segment-anything's
SAM ViT-H, random weights. The detector's boxes (random, as the weights are) are capped by
``masks.max_boxes`` and given to SAM. Timed on 2 MSRS pairs: the detector, SAM on the detector's boxes,
and the whole ``generate_masks`` path (detect, SAM, PNG + JSON writes), images/s with peak CUDA memory.

Then the memory bound (``occo.pipeline.memory.BoundedBatches``) on 8 pairs with ``masks.batch_size`` 8:
with a budget that holds 2.5 pairs (one pair measured first) the run must batch fewer than 8 pairs and
write every pair; with CUDA's allocator capped (``torch.cuda.set_per_process_memory_fraction``) at 2.5 pairs'
worth above what the models hold and a budget that would allow all 8, the real out-of-memory error must
halve the batch until it fits, and every pair must be written. The dry run: the tiny models on 4 pairs,
the out-of-memory error simulated.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from bench.gpu_check.context import DONE, FAIL, PASS, Context, Row, mib, peak_mib, reset_peak
from bench.masks import load_pairs
from bench.train import measure
from occo.config import Masks, load_params, override
from occo.data import Pair, load_pair
from occo.masks.detector import Detector
from occo.masks.generate import MODALITIES, as_rgb8, generate_masks, mask_batch
from occo.masks.models import load_models, resolve_precision, settings_record
from occo.masks.sam import SamMasker
from occo.pipeline.memory import GIB, measure_peak


def check(ctx: Context) -> Iterator[Row]:
    dev = torch.device(ctx.device)
    changes = {"masks.init": ctx.pick("random", "tiny"), "masks.sam_model": "vit_h", "masks.max_boxes": ctx.pick(16, 4)}
    params = override(load_params(ctx.params), changes).masks
    dtype = resolve_precision("auto", dev)  # the stage's autocast: bf16 (fp16 without bf16) on CUDA, fp32 on CPU
    with tempfile.TemporaryDirectory(dir=ctx.work) as tmp:
        start = time.perf_counter()
        detector, masker = load_models(params, Path(tmp), dev, dtype)
        build = time.perf_counter() - start
        yield speed_row(ctx, params, detector, masker, dtype, build, Path(tmp))
        pairs, source = load_pairs(ctx.shared / "datasets/MSRS", ctx.pick(8, 4), Path(tmp) / "budget")
        yield budget_row(ctx, params, detector, masker, pairs, source, Path(tmp))
        yield oom_row(ctx, params, detector, masker, pairs, source, Path(tmp))


def speed_row(
    ctx: Context,
    params: Masks,
    detector: Detector,
    masker: SamMasker,
    dtype: torch.dtype | None,
    build: float,
    tmp: Path,
) -> Row:
    """Images/s and peak memory of the detector, of SAM and of the whole generate_masks on 2 MSRS pairs."""
    dev = torch.device(ctx.device)
    warmup, repeats = ctx.pick((1, 2), (0, 1))
    pairs, source = load_pairs(ctx.shared / "datasets/MSRS", ctx.pick(2, 1), tmp / "synthetic")
    images = [as_rgb8(img) for pair in pairs for img in load_pair(pair)]
    reset_peak(ctx.device)
    t_det, found = measure(lambda: detector.detect(images), dev, warmup, repeats)
    peak_det = peak_mib(ctx.device)
    boxes = [d.boxes for d in found]
    reset_peak(ctx.device)
    t_sam, _ = measure(lambda: masker.masks(images, boxes), dev, warmup, repeats)
    peak_sam = peak_mib(ctx.device)
    written: list[int] = []

    def generate() -> None:
        with tempfile.TemporaryDirectory(dir=tmp) as out:
            generate_masks(
                pairs,
                Path(out),
                lambda: (detector, masker),
                settings=settings_record(params),
                batch_size=len(pairs),
                desc="generate_masks",
            )
            records = [json.loads(p.read_text(encoding="utf-8")) for p in Path(out, "boxes").glob("*.json")]
            written.append(sum(len(r[kind]["boxes"]) for r in records for kind in MODALITIES))

    reset_peak(ctx.device)
    t_gen, _ = measure(generate, dev, warmup, repeats)
    peak_gen = peak_mib(ctx.device)
    n = len(images)
    h, w = images[0].shape[:2]
    figures = {
        "detector_images_s": n / t_det,
        "sam_images_s": n / t_sam,
        "generate_images_s": n / t_gen,
        "peak_mib": {"detector": peak_det, "sam": peak_sam, "generate_masks": peak_gen},
        "boxes": sum(len(b) for b in boxes),
        "build_s": build,
    }
    what = "Grounding DINO Swin-T (bert-base-sized text encoder) + SAM ViT-H" if not ctx.dry else "tiny models"
    return Row(
        "6 masks (Grounding DINO + SAM, random init)",
        DONE,
        f"{what}, autocast {str(dtype).removeprefix('torch.') if dtype else 'off (fp32)'}, {n} images "
        f"{w}x{h} ({source}), one call each, {figures['boxes']} boxes (max_boxes {params.max_boxes}): images/s "
        f"detector {figures['detector_images_s']:,.2f} (peak {mib(peak_det)}), SAM {figures['sam_images_s']:,.2f} "
        f"(peak {mib(peak_sam)}), whole generate_masks {figures['generate_images_s']:,.2f} (peak {mib(peak_gen)}, "
        f"{written[-1]} boxes written); models built in {build:.0f} s",
        figures,
    )


def recording(detector: Detector, fail_over: int | None = None) -> list[int]:
    """Record the pairs of each detector call (and, with ``fail_over``, raise CUDA's out-of-memory error above
    that many, as the dry run's stand-in for a full device)."""
    sizes: list[int] = []
    detect = detector.detect

    def wrapped(images: list[np.ndarray]) -> list:
        sizes.append(len(images) // 2)
        if fail_over is not None and len(images) // 2 > fail_over:
            raise torch.OutOfMemoryError(f"CUDA out of memory (simulated: {len(images) // 2} pairs)")
        return detect(images)

    detector.detect = wrapped
    return sizes


def run_bounded(params: Masks, detector: Detector, masker: SamMasker, pairs: list[Pair], out: Path, budget: int) -> int:
    return generate_masks(
        pairs,
        out,
        lambda: (detector, masker),
        settings=settings_record(params),
        batch_size=len(pairs),
        desc="masks (budget)",
        budget=budget,
    )


def budget_row(
    ctx: Context, params: Masks, detector: Detector, masker: SamMasker, pairs: list[Pair], source: str, tmp: Path
) -> Row:
    """A budget of 2.5 pairs, measured: fewer pairs per batch than ``masks.batch_size``, every pair written."""
    dev = torch.device(ctx.device)
    reset_peak(ctx.device)  # the measurement below is then exact on CUDA (the stage's own is an upper bound)
    with measure_peak(dev) as one:
        mask_batch(pairs[:1], detector, masker)
    budget = int(2.5 * max(one.bytes, 1 << 20))
    sizes = recording(detector)
    try:
        written = run_bounded(params, detector, masker, pairs, tmp / "budget_out", budget)
    finally:
        del detector.detect
    ok = written == len(pairs) and 1 <= max(sizes[1:], default=1) < len(pairs)
    return Row(
        "6 masks: batches within a memory budget",
        PASS if ok else FAIL,
        f"{len(pairs)} pairs ({source}), masks.batch_size {len(pairs)}, one pair measured at "
        f"{one.bytes / GIB:.2f} GB, budget {budget / GIB:.2f} GB: pairs per detector call {sizes}; "
        f"{written} of {len(pairs)} pairs written",
        {"pair_gb": one.bytes / GIB, "budget_gb": budget / GIB, "batches": sizes, "written": written},
    )


def oom_row(
    ctx: Context, params: Masks, detector: Detector, masker: SamMasker, pairs: list[Pair], source: str, tmp: Path
) -> Row:
    """An out-of-memory error (real on CUDA: the allocator capped; simulated in the dry run) halves the batch and
    retries its pairs until they fit; every pair written."""
    dev = torch.device(ctx.device)
    capped = None
    if not ctx.dry:
        reset_peak(ctx.device)
        with measure_peak(dev) as one:
            mask_batch(pairs[:1], detector, masker)
        total = torch.cuda.get_device_properties(dev).total_memory
        capped = min(1.0, (torch.cuda.memory_allocated(dev) + 2.5 * one.bytes) / total)
        torch.cuda.empty_cache()
        torch.cuda.set_per_process_memory_fraction(capped, dev)
    sizes = recording(detector, fail_over=None if capped else 2)
    warnings = _Collect()
    logging.getLogger("occo.pipeline.memory").addHandler(warnings)
    try:
        written = run_bounded(params, detector, masker, pairs, tmp / "oom_out", 1 << 50)
    finally:
        del detector.detect
        logging.getLogger("occo.pipeline.memory").removeHandler(warnings)
        if capped:
            torch.cuda.set_per_process_memory_fraction(1.0, dev)
    halved = [m for m in warnings.messages if "out of memory with" in m]
    ok = written == len(pairs) and bool(halved)
    how = f"CUDA allocator capped at {capped:.1%} of the device" if capped else "out-of-memory simulated above 2 pairs"
    return Row(
        "6 masks: out of memory halves the batch",
        PASS if ok else FAIL,
        f"{len(pairs)} pairs ({source}), budget unbounded, {how}: pairs per detector call {sizes}; "
        f"{len(halved)} halving(s) logged; {written} of {len(pairs)} pairs written",
        {"batches": sizes, "halvings": halved, "written": written},
    )


class _Collect(logging.Handler):
    """The messages logged while it is attached."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
