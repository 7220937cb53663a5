"""Loading the masks stage's models from params (``masks.init``): pretrained (registry or local copies), the same
architectures at random init (rehearsals), or tiny random-init ones (tests, smoke)."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from occo.config import Masks
from occo.data import DataError
from occo.fetch.weights import resolve_weights
from occo.masks.detector import Detector, DetectorSettings, GroundingDinoPy, build_grounding_dino, gdino_config
from occo.masks.detector_hf import GroundingDinoHF, load_hf_grounding_dino
from occo.masks.sam import SamMasker, load_sam, random_sam
from occo.masks.tiny import (
    TINY_DETECTOR_SIZE,
    bert_base_config,
    random_hf_grounding_dino,
    tiny_bert,
    tiny_grounding_dino_args,
    tiny_hf_grounding_dino,
    tiny_sam,
)

log = logging.getLogger(__name__)

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(name: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype of ``masks.precision``: ``auto`` → bf16 on CUDA (fp16 where bf16 is unsupported), fp32
    (None) on CPU.

    ``bf16``/``fp16`` are CUDA-only (autocast runs on CUDA only): DataError on another device; ``fp32``
    disables autocast.
    """
    if name == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if PRECISIONS[name] is not None and device.type != "cuda":
        raise DataError(f"masks.precision {name} needs a CUDA device (got {device}); use auto or fp32")
    return PRECISIONS[name]


def detector_settings(cfg: Masks) -> DetectorSettings:
    """The prompt and thresholds of the ``masks`` params."""
    return DetectorSettings(
        prompt=cfg.prompt,
        box_threshold=cfg.box_threshold,
        text_threshold=cfg.text_threshold,
        nms_iou=cfg.nms_iou,
        max_boxes=cfg.max_boxes,
    )


def groundingdino_weights(cfg: Masks, root: Path) -> dict[str, Path]:
    """groundingdino-py's checkpoint (``masks.gdino_checkpoint``) and BERT folder (``masks.text_encoder``)."""
    return {
        "gdino": resolve_weights(
            "groundingdino_swint_ogc", cfg.gdino_checkpoint, param="masks.gdino_checkpoint", root=root
        ),
        "text_encoder": resolve_weights("bert_base_uncased", cfg.text_encoder, param="masks.text_encoder", root=root),
    }


def load_groundingdino(
    paths: dict[str, Path], settings: DetectorSettings, device: torch.device, dtype: torch.dtype | None
) -> GroundingDinoPy:
    """groundingdino-py's Swin-T OGC with its checkpoint and local BERT."""
    model = build_grounding_dino(gdino_config(paths["text_encoder"]), paths["gdino"])
    return GroundingDinoPy(model, settings, device=device, dtype=dtype)


def tiny_groundingdino(settings: DetectorSettings, device: torch.device, dtype: torch.dtype | None) -> GroundingDinoPy:
    """groundingdino-py's builder with the tiny overrides and a tiny BERT (seed 0)."""
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        model = build_grounding_dino(tiny_grounding_dino_args(tiny_bert(Path(tmp), settings.prompt)), None)
    return GroundingDinoPy(model, settings, device=device, dtype=dtype, size=TINY_DETECTOR_SIZE)


def random_groundingdino(
    settings: DetectorSettings, device: torch.device, dtype: torch.dtype | None
) -> GroundingDinoPy:
    """groundingdino-py's builder on its shipped Swin-T OGC config, unchanged, with a bert-base-sized BERT, at
    random init (seed 0)."""
    with tempfile.TemporaryDirectory() as tmp:
        text_encoder = tiny_bert(Path(tmp), settings.prompt, config=bert_base_config)
        torch.manual_seed(0)
        model = build_grounding_dino(gdino_config(text_encoder), None)
    return GroundingDinoPy(model, settings, device=device, dtype=dtype)


def transformers_weights(cfg: Masks, root: Path) -> dict[str, Path]:
    """The ``save_pretrained`` folder of IDEA-Research/grounding-dino-tiny (``masks.hf_model``)."""
    return {"hf_model": resolve_weights("grounding_dino_tiny_hf", cfg.hf_model, param="masks.hf_model", root=root)}


def load_transformers(
    paths: dict[str, Path], settings: DetectorSettings, device: torch.device, dtype: torch.dtype | None
) -> GroundingDinoHF:
    """transformers' Grounding DINO and processor from the local folder."""
    model, processor = load_hf_grounding_dino(paths["hf_model"])
    return GroundingDinoHF(model, processor, settings, device=device, dtype=dtype)


def tiny_transformers(settings: DetectorSettings, device: torch.device, dtype: torch.dtype | None) -> GroundingDinoHF:
    """A tiny random-init transformers Grounding DINO (seed 0), saved to a temporary folder and loaded back from it."""
    with tempfile.TemporaryDirectory() as tmp:
        model, processor = load_hf_grounding_dino(tiny_hf_grounding_dino(Path(tmp), settings.prompt))
    return GroundingDinoHF(model, processor, settings, device=device, dtype=dtype)


def random_transformers(settings: DetectorSettings, device: torch.device, dtype: torch.dtype | None) -> GroundingDinoHF:
    """transformers' Grounding DINO at grounding-dino-tiny's architecture, random init (seed 0), saved to a
    temporary folder and loaded back from it."""
    with tempfile.TemporaryDirectory() as tmp:
        model, processor = load_hf_grounding_dino(random_hf_grounding_dino(Path(tmp), settings.prompt))
    return GroundingDinoHF(model, processor, settings, device=device, dtype=dtype)


@dataclass(frozen=True)
class DetectorBackend:
    """One ``masks.detector``: its pretrained weights from params, the detector built from them, the same
    architecture at random init, and a tiny random-init one."""

    weights: Callable[[Masks, Path], dict[str, Path]]
    load: Callable[[dict[str, Path], DetectorSettings, torch.device, torch.dtype | None], Detector]
    random: Callable[[DetectorSettings, torch.device, torch.dtype | None], Detector]
    tiny: Callable[[DetectorSettings, torch.device, torch.dtype | None], Detector]


DETECTORS: dict[str, DetectorBackend] = {
    "groundingdino": DetectorBackend(
        groundingdino_weights, load_groundingdino, random_groundingdino, tiny_groundingdino
    ),
    "transformers": DetectorBackend(transformers_weights, load_transformers, random_transformers, tiny_transformers),
}
"""Detector backends: ``groundingdino`` = groundingdino-py (the paper's setup, default); ``transformers`` =
transformers' ``GroundingDinoForObjectDetection`` (IDEA-Research/grounding-dino-tiny, Swin-T)."""


def detector_backend(cfg: Masks) -> DetectorBackend:
    """The backend named by ``masks.detector``."""
    return DETECTORS[cfg.detector]


def weight_paths(cfg: Masks, root: Path) -> dict[str, Path]:
    """The SAM checkpoint and the detector's weights: local params or the registry (downloaded if absent).

    Raises WeightsUnavailableError naming the file, its URL and the param when one cannot be had.
    """
    return {
        "sam": resolve_weights(f"sam_{cfg.sam_model}", cfg.sam_checkpoint, param="masks.sam_checkpoint", root=root),
        **detector_backend(cfg).weights(cfg, root),
    }


Models = tuple[Detector, SamMasker]


def pretrained_models(cfg: Masks, root: Path, device: torch.device, dtype: torch.dtype | None) -> Models:
    """The detector and SAM from their pretrained weights (local params or the registry copies)."""
    paths = weight_paths(cfg, root)
    detector = detector_backend(cfg).load(paths, detector_settings(cfg), device, dtype)
    masker = SamMasker(load_sam(cfg.sam_model, paths["sam"]), device=device, dtype=dtype)
    log.info(
        "loaded the %s detector and SAM %s from %s", cfg.detector, cfg.sam_model, ", ".join(map(str, paths.values()))
    )
    return detector, masker


def random_models(cfg: Masks, root: Path, device: torch.device, dtype: torch.dtype | None) -> Models:
    """The configured architectures (Swin-T Grounding DINO with a bert-base-sized text encoder, SAM
    ``masks.sam_model``) at random init: real sizes, real memory, meaningless masks."""
    log.warning(
        "masks.init random: %s Grounding DINO (Swin-T, bert-base-sized text encoder) and SAM %s at random init; "
        "the masks are meaningless (rehearsals only)",
        cfg.detector,
        cfg.sam_model,
    )
    detector = detector_backend(cfg).random(detector_settings(cfg), device, dtype)
    return detector, SamMasker(random_sam(cfg.sam_model), device=device, dtype=dtype)


def tiny_models(cfg: Masks, root: Path, device: torch.device, dtype: torch.dtype | None) -> Models:
    """Tiny random-init models (occo.masks.tiny): the code paths and I/O only."""
    log.warning(
        "masks.init tiny: tiny random-init %s Grounding DINO and SAM; the masks are meaningless (tests/smoke only)",
        cfg.detector,
    )
    return detector_backend(cfg).tiny(detector_settings(cfg), device, dtype), SamMasker(
        tiny_sam(), device=device, dtype=dtype
    )


MODEL_INITS: dict[str, Callable[[Masks, Path, torch.device, torch.dtype | None], Models]] = {
    "pretrained": pretrained_models,
    "random": random_models,
    "tiny": tiny_models,
}
"""``masks.init`` → how the detector and SAM are made."""


def load_models(cfg: Masks, root: Path, device: torch.device, dtype: torch.dtype | None) -> Models:
    """The detector and SAM masker of the ``masks`` params, made as ``masks.init`` says (:data:`MODEL_INITS`)."""
    return MODEL_INITS[cfg.init](cfg, root, device, dtype)


def settings_record(cfg: Masks) -> dict:
    """What determines the masks (kept in each folder's settings.json and every box JSON)."""
    settings = detector_settings(cfg)
    return {
        "detector": cfg.detector,
        "prompt": settings.prompt,
        "box_threshold": settings.box_threshold,
        "text_threshold": settings.text_threshold,
        "nms_iou": settings.nms_iou,
        "max_boxes": settings.max_boxes,
        "sam_model": "tiny" if cfg.init == "tiny" else cfg.sam_model,
        "init": cfg.init,
    }
