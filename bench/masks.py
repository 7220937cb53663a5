"""Benchmark: the masks stage's Grounding DINO + SAM, SAM embedded once per image against the per-box baseline.

Models are built at random init (nothing is downloaded): by default the tiny models of
``occo/masks/tiny.py``; with ``--real`` the real-size architectures, SAM ``--sam`` (vit_b by default) from
segment-anything's ``sam_model_registry[...](checkpoint=None)`` and groundingdino-py's Swin-T OGC
Grounding DINO (800 px short side) from its builder as ``occo/masks/models.py`` does, without a
checkpoint and with the tiny BERT folder as text encoder (its cost on a ten-token prompt is
negligible next to the Swin-T backbone and the deformable transformer). Weights are random, so the
timings are those of real runs while the boxes and masks are meaningless.

Images are the MSRS pairs in ``--data`` (640x480; infrared and visible images interleaved, ``ir, vi,
ir, vi, ...``, as the stage feeds them), or synthetic pairs of the same size from
``occo.data.make_synthetic`` when that folder is absent. Measured in one run, on ``--device``, per
precision (fp32, plus the autocast dtype ``resolve_precision('auto')`` picks on CUDA), and printed as
markdown tables:

1. detector throughput (images/s), ``batch_size`` pairs (2 images each) per forward as the stage;
2. SAM on fixed synthetic boxes (``--boxes``, seeded, the same for both paths, so the random
   detector's output does not matter): occo's ``SamMasker`` (one image-encoder run per image, the
   image's boxes decoded together against it) against the naive use of ``SamPredictor``, one
   ``set_image`` + one ``predict`` per box (the encoder re-run for every box), with the speed ratio
   and the number of mask pixels on which the two disagree (fp32 must agree exactly);
3. the whole ``generate_masks`` path (load, detect, SAM, PNG + JSON writes) in masks/s (one mask per
   image: a pair gives its ir and vi masks).

Timings are medians of ``--repeats`` runs after ``--warmup`` runs (CUDA synchronised); peak memory
is ``torch.cuda.max_memory_allocated`` during each configuration (CUDA only).

    python bench/masks.py                                  # tiny models, 4 images, CPU (seconds)
    python bench/masks.py --real --images 1 --warmup 0 --repeats 1 --boxes 3   # ViT-B + Swin-T on CPU: minutes
    python bench/masks.py --real --sam vit_h --images 16 --device cuda         # the paper's SAM on a GPU
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from segment_anything import SamPredictor, sam_model_registry

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.train import measure, peak_memory, table  # noqa: E402
from occo.config import load_params, override  # noqa: E402
from occo.data import Pair, find_pairs, load_pair, make_synthetic  # noqa: E402
from occo.masks.detector import (  # noqa: E402
    GDINO_SIZE,
    Detector,
    DetectorSettings,
    GroundingDinoPy,
    autocast,
    build_grounding_dino,
    gdino_config,
)
from occo.masks.generate import MODALITIES, as_rgb8, generate_masks  # noqa: E402
from occo.masks.models import PRECISIONS, detector_settings, resolve_precision, settings_record  # noqa: E402
from occo.masks.sam import SAM_MODELS, SamMasker  # noqa: E402
from occo.masks.tiny import TINY_DETECTOR_SIZE, tiny_bert, tiny_grounding_dino_args, tiny_sam  # noqa: E402
from occo.pipeline.device import batch_size_flag, device_flag, resolve_batch_size, resolve_device  # noqa: E402

SIZE = (480, 640)
"""(H, W) of MSRS images and of the synthetic stand-ins."""


@dataclass(frozen=True)
class Models:
    """The detector network, the SAM model, the detector input size (short side, long-side cap) and a description."""

    gdino: torch.nn.Module
    sam: torch.nn.Module
    detector_size: tuple[int, int]
    name: str


def build_models(real: bool, sam_name: str, prompt: str, folder: Path) -> Models:
    """Random-init Grounding DINO (groundingdino-py) and SAM: the tiny ones, or with ``real`` the real-size ones.

    The tiny BERT text encoder is written to ``folder`` (groundingdino-py reads it while building).
    """
    torch.manual_seed(0)
    bert = tiny_bert(folder, prompt)
    if real:
        gdino = build_grounding_dino(gdino_config(bert), None)
        sam = sam_model_registry[sam_name](checkpoint=None).eval()
        return Models(gdino, sam, GDINO_SIZE, f"Grounding DINO Swin-T OGC + SAM {sam_name} (real sizes)")
    gdino = build_grounding_dino(tiny_grounding_dino_args(bert), None)
    return Models(gdino, tiny_sam(), TINY_DETECTOR_SIZE, "tiny Grounding DINO + tiny SAM (occo/masks/tiny.py)")


def load_pairs(data: Path, n_pairs: int, folder: Path) -> tuple[list[Pair], str]:
    """The first ``n_pairs`` pairs of ``data`` (``ir/``, ``vi/``), or synthetic 640x480 pairs written to ``folder``."""
    if (data / "ir").is_dir() and (data / "vi").is_dir():
        pairs = find_pairs(ir=data / "ir", vi=data / "vi")[:n_pairs]
        return pairs, f"{len(pairs)} pairs from {data}"
    make_synthetic(folder, n_train=n_pairs, n_test=0, height=SIZE[0], width=SIZE[1])
    pairs = find_pairs(ir=folder / "train" / "ir", vi=folder / "train" / "vi")
    return pairs, f"{len(pairs)} synthetic pairs (occo.data.make_synthetic; {data} not found)"


def synthetic_boxes(images: list[np.ndarray], low: int, high: int, seed: int = 0) -> list[np.ndarray]:
    """Per image ``low``..``high`` random xyxy pixel boxes (float32), each 5-40 % of the image side, seeded."""
    rng = np.random.default_rng(seed)
    out = []
    for img in images:
        height, width = img.shape[:2]
        n = int(rng.integers(low, high + 1))
        size = rng.uniform(0.05, 0.4, (n, 2)) * (width, height)
        corner = rng.uniform(0, 1, (n, 2)) * ((width, height) - size)
        out.append(np.concatenate([corner, corner + size], axis=1).astype(np.float32))
    return out


def naive_masks(
    predictor: SamPredictor, images: list[np.ndarray], boxes: list[np.ndarray], dtype: torch.dtype | None
) -> list[np.ndarray]:
    """The per-box baseline: per box, ``set_image`` (encoder run again) and ``predict`` one mask; OR-ed per image."""
    out = []
    for img, img_boxes in zip(images, boxes):
        union = np.zeros(img.shape[:2], dtype=bool)
        for box in img_boxes:
            with autocast(predictor.device, dtype):
                predictor.set_image(img)
                mask, _, _ = predictor.predict(box=box, multimask_output=False)
            union |= mask[0]
        out.append(union)
    return out


def in_chunks(fn: Callable[[list], list], items: list, size: int) -> list:
    """``fn`` applied to consecutive slices of at most ``size`` items, results concatenated."""
    return [r for lo in range(0, len(items), size) for r in fn(items[lo : lo + size])]


def sam_in_chunks(masker: SamMasker, images: list[np.ndarray], boxes: list[np.ndarray], size: int) -> list[np.ndarray]:
    """``SamMasker.masks`` on consecutive slices of at most ``size`` images (as ``generate_masks`` calls it)."""
    return [
        m for lo in range(0, len(images), size) for m in masker.masks(images[lo : lo + size], boxes[lo : lo + size])
    ]


def generate_boxes(
    pairs: list[Pair], detector: Detector, masker: SamMasker, settings: dict, batch_size: int, desc: str
) -> int:
    """One ``generate_masks`` run into a temporary folder (PNG and JSON writes included); returns the boxes kept."""
    with tempfile.TemporaryDirectory() as out:
        generate_masks(
            pairs, Path(out), lambda: (detector, masker), settings=settings, batch_size=batch_size, desc=desc
        )
        records = [json.loads(p.read_text(encoding="utf-8")) for p in Path(out, "boxes").glob("*.json")]
        return sum(len(r[kind]["boxes"]) for r in records for kind in MODALITIES)


def precisions(device: torch.device) -> list[tuple[str, torch.dtype | None]]:
    """fp32, and on CUDA the autocast dtype of ``masks.precision: auto``."""
    auto = resolve_precision("auto", device)
    return [("fp32", None)] + [(name, dtype) for name, dtype in PRECISIONS.items() if auto and dtype == auto]


def parse_boxes(text: str) -> tuple[int, int]:
    """``'3-8'`` → (3, 8); ``'4'`` → (4, 4)."""
    low, _, high = text.partition("-")
    bounds = int(low), int(high or low)
    if not 1 <= bounds[0] <= bounds[1]:
        raise argparse.ArgumentTypeError(f"--boxes wants N or MIN-MAX with 1 <= MIN <= MAX, got {text!r}")
    return bounds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", action="store_true", help="real-size architectures (random init), not the tiny ones")
    parser.add_argument("--sam", choices=SAM_MODELS, default="vit_b", help="SAM size with --real")
    parser.add_argument("--images", type=int, default=4, help="images (ir and vi interleaved; pairs = ceil(N/2))")
    parser.add_argument(
        "--data",
        type=Path,
        default=REPO.parent / "shared/datasets/MSRS",
        help="folder with ir/ and vi/ (synthetic pairs when absent)",
    )
    parser.add_argument(
        "--boxes", type=parse_boxes, default=(3, 8), help="fixed synthetic boxes per image: N or MIN-MAX"
    )
    parser.add_argument("--device", type=device_flag, default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument(
        "--batch-size",
        type=batch_size_flag,
        default="auto",
        help="pairs per forward, as masks.batch_size (auto: 1 on CPU, 8 on CUDA)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs before timing")
    parser.add_argument(
        "--params", type=Path, default=REPO / "params.yaml", help="prompt and thresholds (its masks section)"
    )
    args = parser.parse_args(argv)
    if args.images < 1 or args.repeats < 1 or args.warmup < 0:
        parser.error("--images and --repeats must be >= 1, --warmup >= 0")
    device = resolve_device(args.device)
    params = override(
        load_params(args.params), {"masks.init": "random" if args.real else "tiny", "masks.sam_model": args.sam}
    ).masks
    settings: DetectorSettings = detector_settings(params)
    pairs_per_call = resolve_batch_size(args.batch_size, device)
    per_call = 2 * pairs_per_call  # images per detector / SAM call, as generate_masks

    with tempfile.TemporaryDirectory() as tmp:
        tmp_dir = Path(tmp)
        models = build_models(args.real, args.sam, settings.prompt, tmp_dir / "bert")
        pairs, source = load_pairs(args.data, math.ceil(args.images / 2), tmp_dir / "synthetic")
        images = [as_rgb8(img) for pair in pairs for img in load_pair(pair)][: args.images]
        boxes = synthetic_boxes(images, *args.boxes)
        n_boxes = sum(len(b) for b in boxes)
        sam = models.sam.to(device)
        predictor = SamPredictor(sam)

        print(
            f"masks stage: {models.name}, random init; {len(images)} images ({source}, "
            f"{'x'.join(map(str, images[0].shape[1::-1]))}), {pairs_per_call} pair(s) = {per_call} images per call, "
            f"median of {args.repeats} after {args.warmup} warm-up"
        )
        print(
            f"torch {torch.__version__}, python {platform.python_version()}, "
            f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} CPU threads, device {device}"
            + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
            + ("" if device.type == "cuda" else "; bf16/fp16 autocast: CUDA only, not measured")
            + "\n"
        )

        det_rows, sam_rows, gen_rows = [], [], []
        base: dict[str, float] = {}
        mismatch = False
        for name, dtype in precisions(device):
            detector = GroundingDinoPy(models.gdino, settings, device=device, dtype=dtype, size=models.detector_size)
            masker = SamMasker(sam, device=device, dtype=dtype)

            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            detect = partial(in_chunks, detector.detect, images, per_call)
            t_det, _ = measure(detect, device, args.warmup, args.repeats)
            base.setdefault("det", t_det)
            det_rows.append(
                (
                    name,
                    len(images),
                    min(per_call, len(images)),
                    f"{t_det:,.3f}",
                    f"{len(images) / t_det:,.2f}",
                    f"x{base['det'] / t_det:.2f}",
                    peak_memory(device),
                )
            )

            naive = partial(naive_masks, predictor, images, boxes, dtype)
            t_naive, want = measure(naive, device, args.warmup, args.repeats)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            batched = partial(sam_in_chunks, masker, images, boxes, per_call)
            t_batched, got = measure(batched, device, args.warmup, args.repeats)
            differ = sum(int((g != w).sum()) for g, w in zip(got, want))
            mismatch |= dtype is None and differ > 0
            sam_rows.append(
                (
                    name,
                    len(images),
                    n_boxes,
                    f"{t_naive:,.3f}",
                    f"{t_batched:,.3f}",
                    f"{len(images) / t_batched:,.2f}",
                    f"x{t_naive / t_batched:.2f}",
                    "yes" if differ == 0 else f"no: {differ} px of {sum(m.size for m in got)}",
                    peak_memory(device),
                )
            )

            generate = partial(
                generate_boxes,
                pairs,
                detector,
                masker,
                settings_record(params),
                pairs_per_call,
                f"generate_masks {name}",
            )
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            # the boxes the (random) detector kept in the last run: SAM's share of the time depends on them
            t_gen, found = measure(generate, device, args.warmup, args.repeats)
            base.setdefault("gen", t_gen)
            gen_rows.append(
                (
                    name,
                    len(pairs),
                    2 * len(pairs),
                    found,
                    f"{t_gen:,.3f}",
                    f"{2 * len(pairs) / t_gen:,.2f}",
                    f"x{base['gen'] / t_gen:.2f}",
                    peak_memory(device),
                )
            )

    print(f"### 1. Detector (groundingdino-py, input {models.detector_size[0]} px short side)\n")
    table(
        ("precision", "images", "images per call", "s (median)", "images/s", "speed vs fp32", "peak memory"), det_rows
    )
    print(
        f"### 2. SAM: one embedding per image, boxes batched (SamMasker) vs per box set_image + predict "
        f"(SamPredictor), {args.boxes[0]}-{args.boxes[1]} fixed boxes per image\n"
    )
    table(
        (
            "precision",
            "images",
            "boxes",
            "per-box baseline s",
            "SamMasker s",
            "SamMasker images/s",
            "speed-up",
            "masks identical",
            "SamMasker peak memory",
        ),
        sam_rows,
    )
    print(
        "Both paths get the same images and boxes; the baseline re-runs the image encoder for every box, so the "
        "speed-up is about the mean boxes per image when the encoder dominates.\n"
    )
    print("### 3. Whole path: generate_masks (load pair, detect, SAM, write PNG masks + box JSON)\n")
    table(
        ("precision", "pairs", "masks", "boxes detected", "s (median)", "masks/s", "speed vs fp32", "peak memory"),
        gen_rows,
    )
    if mismatch:
        raise SystemExit("fp32 masks of SamMasker and the per-box SamPredictor baseline differ")


if __name__ == "__main__":
    main()
