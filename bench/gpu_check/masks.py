"""Step 6: the masks stage's models at real size (random init) on two MSRS pairs, under the stage's autocast.

``bench/masks.py``'s builders: groundingdino-py's Grounding DINO Swin-T OGC (its text encoder a
1-layer BERT: bert-base needs a download) and segment-anything's SAM ViT-H, both random-init. The
detector's boxes (random, as the weights are) are capped by ``masks.max_boxes`` and given to SAM.
Timed: the detector, SAM on the detector's boxes, and the whole ``generate_masks`` path (load, detect,
SAM, PNG + JSON writes), images/s with peak CUDA memory. The dry run: the tiny models on one pair.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from bench.gpu_check.context import DONE, Context, Row, mib, peak_mib, reset_peak
from bench.masks import build_models, load_pairs
from bench.train import measure
from occo.config import load_params, override
from occo.data import load_pair
from occo.masks.detector import GroundingDinoPy
from occo.masks.generate import MODALITIES, as_rgb8, generate_masks
from occo.masks.models import detector_settings, resolve_precision, settings_record
from occo.masks.sam import SamMasker


def check(ctx: Context) -> Iterator[Row]:
    dev = torch.device(ctx.device)
    changes = {
        "masks.init": "tiny" if ctx.dry else "random",
        "masks.sam_model": "vit_h",
        "masks.max_boxes": ctx.pick(16, 4),
    }
    params = override(load_params(ctx.params), changes).masks
    settings = detector_settings(params)
    dtype = resolve_precision("auto", dev)  # the stage's autocast: bf16 (fp16 without bf16) on CUDA, fp32 on CPU
    warmup, repeats = ctx.pick((1, 2), (0, 1))
    with tempfile.TemporaryDirectory(dir=ctx.work) as tmp:
        start = time.perf_counter()
        models = build_models(not ctx.dry, "vit_h", settings.prompt, Path(tmp) / "bert")
        build = time.perf_counter() - start
        pairs, source = load_pairs(ctx.shared / "datasets/MSRS", ctx.pick(2, 1), Path(tmp) / "synthetic")
        images = [as_rgb8(img) for pair in pairs for img in load_pair(pair)]
        detector = GroundingDinoPy(models.gdino, settings, device=dev, dtype=dtype, size=models.detector_size)
        masker = SamMasker(models.sam, device=dev, dtype=dtype)

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
    yield Row(
        "6 masks (Grounding DINO + SAM, random init)",
        DONE,
        f"{models.name}, autocast {str(dtype).removeprefix('torch.') if dtype else 'off (fp32)'}, {n} images "
        f"{w}x{h} ({source}), one call each, {figures['boxes']} boxes (max_boxes {settings.max_boxes}): images/s "
        f"detector {figures['detector_images_s']:,.2f} (peak {mib(peak_det)}), SAM {figures['sam_images_s']:,.2f} "
        f"(peak {mib(peak_sam)}), whole generate_masks {figures['generate_images_s']:,.2f} (peak {mib(peak_gen)}, "
        f"{written[-1]} boxes written); models built in {build:.0f} s",
        figures,
    )
