"""transformers' Grounding DINO (``GroundingDinoForObjectDetection``) as the masks stage's detector
(``masks.detector: transformers``).

The same model family as groundingdino-py's, loaded from a ``save_pretrained`` folder (safetensors
weights, its processor's config and BERT tokenizer) with ``local_files_only``. The processor
resizes, normalises and pads the batch and tokenises the caption; the processor's
``post_process_grounded_object_detection`` keeps the queries whose best token score exceeds
``box_threshold`` and names them by the tokens above ``text_threshold``; then the shared
:func:`~occo.masks.detector.select_boxes` (NMS, ``max_boxes``), as the groundingdino-py backend.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from transformers import AutoProcessor, GroundingDinoForObjectDetection, ProcessorMixin
from transformers.models.grounding_dino.modeling_grounding_dino import GroundingDinoObjectDetectionOutput

from occo.masks.detector import Detections, DetectorSettings, autocast, preprocess_caption, select_boxes


def load_hf_grounding_dino(folder: Path) -> tuple[GroundingDinoForObjectDetection, ProcessorMixin]:
    """The Grounding DINO model and processor saved in ``folder``, read from there only (no hub)."""
    processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
    model = GroundingDinoForObjectDetection.from_pretrained(folder, local_files_only=True)
    return model.eval(), processor


class GroundingDinoHF:
    """transformers' Grounding DINO run on batches, with the processor's pre- and post-processing."""

    def __init__(
        self,
        model: GroundingDinoForObjectDetection,
        processor: ProcessorMixin,
        settings: DetectorSettings,
        *,
        device: torch.device,
        dtype: torch.dtype | None,
    ) -> None:
        self.model = model.to(device).eval()
        self.processor = processor
        self.settings, self.device, self.dtype = settings, device, dtype
        self.caption = preprocess_caption(settings.prompt)

    @torch.inference_mode()
    def detect(self, images: list[np.ndarray]) -> list[Detections]:
        inputs = self.processor(images=images, text=[self.caption] * len(images), return_tensors="pt").to(self.device)
        with autocast(self.device, self.dtype):
            out = self.model(**inputs)
        found = self.processor.post_process_grounded_object_detection(
            GroundingDinoObjectDetectionOutput(logits=out.logits.float(), pred_boxes=out.pred_boxes.float()),
            input_ids=inputs["input_ids"],
            threshold=self.settings.box_threshold,
            text_threshold=self.settings.text_threshold,
        )  # no target_sizes: boxes stay normalised xyxy
        return [
            select_boxes(
                result["boxes"],
                result["scores"],
                [label.replace(".", "").strip() for label in result["text_labels"]],
                img.shape[:2],
                self.settings,
                box_format="xyxy",
            )
            for img, result in zip(images, found)
        ]
