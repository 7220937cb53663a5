"""Open-vocabulary box detection for the masks stage: the detector protocol, the post-processing both backends
share, and groundingdino-py's Grounding DINO.

``masks.detector`` picks the backend (``occo.masks.models.DETECTORS``): ``groundingdino`` (default, the
paper's setup) runs groundingdino-py's own model (here); ``transformers`` runs the same model family
through transformers' ``GroundingDinoForObjectDetection`` (``occo.masks.detector_hf``). Both return
:class:`Detections` per image: boxes kept when their best token score exceeds ``box_threshold``,
phrases made of the prompt tokens scoring above ``text_threshold``, then class-agnostic NMS at
``nms_iou`` and the ``max_boxes`` best (Grounded-SAM's post-processing).
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from PIL import Image
from torchvision.ops import box_convert, nms

from occo.data.color import IMAGENET_MEAN, IMAGENET_STD

log = logging.getLogger(__name__)

GROUNDINGDINO_NOTICES: tuple[tuple[type[Warning], str, str], ...] = (
    (FutureWarning, r"`torch\.cuda\.amp\.autocast\(args\.\.\.\)` is deprecated", r"groundingdino\."),
    (FutureWarning, r"The `device` argument is deprecated", r"transformers\.modeling_utils"),
)
"""(category, message, module) of the deprecation notices groundingdino-py 0.4 triggers on every forward with
current torch and transformers (its own code, not ours): filtered from the moment it is imported."""
GROUNDINGDINO_BUILD_NOTICES: tuple[tuple[type[Warning], str], ...] = (
    (FutureWarning, r"Importing from timm\.models\.layers is deprecated"),
    (UserWarning, r"torch\.meshgrid: in an upcoming release"),
)
"""(category, message) of the notices its import and its Swin backbone's construction give, filtered there."""
GDINO_SIZE = (800, 1333)
"""Grounding DINO's test-time resize: shorter side 800, longer side at most 1333."""


@dataclass(frozen=True)
class DetectorSettings:
    """The text prompt and the post-processing thresholds, from the ``masks`` params
    (``occo.masks.models.detector_settings``)."""

    prompt: str
    box_threshold: float
    text_threshold: float
    nms_iou: float
    max_boxes: int


@dataclass(frozen=True)
class Detections:
    """One image's boxes (N, 4) in pixels xyxy, their scores (N,) and matched phrases."""

    boxes: np.ndarray
    scores: np.ndarray
    phrases: list[str]

    def to_json(self) -> dict:
        """``{"boxes": [[x0, y0, x1, y1], ...], "scores": [...], "phrases": [...]}`` (rounded for reading)."""
        return {
            "boxes": [[round(float(v), 2) for v in box] for box in self.boxes],
            "scores": [round(float(s), 4) for s in self.scores],
            "phrases": list(self.phrases),
        }


class Detector(Protocol):
    """A batch of RGB uint8 images (H, W, 3) in, one :class:`Detections` per image out."""

    def detect(self, images: list[np.ndarray]) -> list[Detections]: ...


def preprocess_caption(caption: str) -> str:
    """Grounding DINO's caption form: lower case, stripped, ending with ``.``."""
    caption = caption.lower().strip()
    return caption if caption.endswith(".") else caption + "."


def select_boxes(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    phrases: list[str],
    size: tuple[int, int],
    settings: DetectorSettings,
    *,
    box_format: str = "cxcywh",
) -> Detections:
    """Boxes normalised to [0, 1] in ``box_format`` (``cxcywh`` or ``xyxy``) → pixel xyxy clipped to the (H, W)
    image, class-agnostic NMS, best ``max_boxes``."""
    height, width = size
    boxes = box_convert(boxes.float() * boxes.new_tensor([width, height, width, height]), box_format, "xyxy")
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
    keep = nms(boxes, scores.float(), settings.nms_iou)[: settings.max_boxes]  # sorted by score, descending
    return Detections(
        boxes=boxes[keep].cpu().numpy().astype(np.float32),
        scores=scores[keep].float().cpu().numpy(),
        phrases=[phrases[i] for i in keep.tolist()],
    )


def autocast(device: torch.device, dtype: torch.dtype | None) -> torch.autocast:
    """Autocast to ``dtype`` on CUDA; disabled (fp32) otherwise."""
    return torch.autocast(device.type, dtype=dtype, enabled=device.type == "cuda" and dtype is not None)


@contextlib.contextmanager
def quiet_groundingdino() -> Iterator[None]:
    """A block that imports or builds groundingdino-py without its known third-party notices: the per-forward
    ones (:data:`GROUNDINGDINO_NOTICES`) filtered for the rest of the process, the import and build ones
    (:data:`GROUNDINGDINO_BUILD_NOTICES`) and its ``final text_encoder_type`` print (logged at debug) for the
    block only."""
    for category, message, module in GROUNDINGDINO_NOTICES:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)
    printed = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(printed):
        for category, message in GROUNDINGDINO_BUILD_NOTICES:
            warnings.filterwarnings("ignore", message=message, category=category)
        yield
    if printed.getvalue().strip():
        log.debug("groundingdino-py: %s", printed.getvalue().strip())


def gdino_config(text_encoder: Path) -> object:
    """groundingdino-py's shipped ``GroundingDINO_SwinT_OGC.py`` config, its text encoder set to the local
    ``text_encoder`` folder."""
    with quiet_groundingdino():
        import groundingdino.config
        from groundingdino.util.slconfig import SLConfig

    args = SLConfig.fromfile(str(Path(groundingdino.config.__file__).parent / "GroundingDINO_SwinT_OGC.py"))
    args.text_encoder_type = str(text_encoder)
    args.use_checkpoint = args.use_transformer_ckpt = False  # activation checkpointing only saves training memory
    return args


def build_grounding_dino(args: object, checkpoint: Path | None) -> torch.nn.Module:
    """groundingdino-py's model from a config; with ``checkpoint``, its tensors loaded (``weights_only=True``).

    The official checkpoint is ``{"model": state_dict}``; like groundingdino-py's ``load_model`` the
    state dict is loaded non-strictly, and the keys that did not match are logged.
    """
    with quiet_groundingdino():
        from groundingdino.models import build_model
        from groundingdino.util.misc import clean_state_dict

        model = build_model(args)
    if checkpoint is not None:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        result = model.load_state_dict(clean_state_dict(state["model"]), strict=False)
        if result.missing_keys or result.unexpected_keys:
            log.info(
                "%s: %d missing, %d unexpected keys (non-strict, as groundingdino-py loads it)",
                checkpoint,
                len(result.missing_keys),
                len(result.unexpected_keys),
            )
    return model.eval()


class GroundingDinoPy:
    """groundingdino-py's Grounding DINO, run on batches (images padded together as its NestedTensor does)."""

    def __init__(
        self,
        model: torch.nn.Module,
        settings: DetectorSettings,
        *,
        device: torch.device,
        dtype: torch.dtype | None,
        size: tuple[int, int] = GDINO_SIZE,
    ) -> None:
        import groundingdino.datasets.transforms as T

        self.model = model.to(device).eval()
        self.settings, self.device, self.dtype = settings, device, dtype
        self.caption = preprocess_caption(settings.prompt)
        self.tokenized = model.tokenizer(self.caption)
        self.transform = T.Compose(
            [T.RandomResize([size[0]], max_size=size[1]), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
        )

    @torch.inference_mode()
    def detect(self, images: list[np.ndarray]) -> list[Detections]:
        from groundingdino.util.misc import nested_tensor_from_tensor_list
        from groundingdino.util.utils import get_phrases_from_posmap

        batch = nested_tensor_from_tensor_list(
            [self.transform(Image.fromarray(img), None)[0].to(self.device) for img in images]
        )
        with autocast(self.device, self.dtype):
            out = self.model(batch, captions=[self.caption] * len(images))
        logits, boxes = out["pred_logits"].float().sigmoid(), out["pred_boxes"].float()
        results = []
        for img, token_scores, img_boxes in zip(images, logits, boxes):
            scores = token_scores.max(dim=1).values
            keep = scores > self.settings.box_threshold
            phrases = [
                get_phrases_from_posmap(row > self.settings.text_threshold, self.tokenized, self.model.tokenizer)
                .replace(".", "")
                .strip()
                for row in token_scores[keep].cpu()
            ]
            results.append(select_boxes(img_boxes[keep], scores[keep], phrases, img.shape[:2], self.settings))
        return results
