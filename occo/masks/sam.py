"""Segment Anything box prompts → one union mask per image, each image embedded once for all its boxes.

Images are embedded in batches by SAM's image encoder (the work of ``SamPredictor.set_image``,
batched); each image's boxes are then decoded together against that one embedding as
``SamPredictor.predict_torch`` does (single-mask output, threshold ``Sam.mask_threshold``), and the
per-box masks are OR-ed into the image's mask.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from segment_anything import sam_model_registry
from segment_anything.modeling import Sam
from segment_anything.utils.transforms import ResizeLongestSide

from occo.masks.detector import autocast

log = logging.getLogger(__name__)

SAM_MODELS: tuple[str, ...] = ("vit_h", "vit_l", "vit_b")
BOX_CHUNK = 32
"""Boxes decoded per mask-decoder call (bounds the full-resolution upsampled logits held at once)."""


def load_sam(model: str, checkpoint: Path) -> Sam:
    """segment-anything's ``model`` (one of :data:`SAM_MODELS`, ``masks.sam_model``) with the official checkpoint's
    tensors (``weights_only=True``)."""
    sam = sam_model_registry[model](checkpoint=None)
    sam.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
    return sam.eval()


def random_sam(model: str, *, seed: int = 0) -> Sam:
    """segment-anything's ``model`` (``masks.sam_model``) at random init (seeded): the real architecture and size."""
    torch.manual_seed(seed)
    return sam_model_registry[model](checkpoint=None).eval()


class SamMasker:
    """Union of SAM's box-prompted masks per image, on ``device`` with autocast ``dtype`` on CUDA."""

    def __init__(self, sam: Sam, *, device: torch.device, dtype: torch.dtype | None) -> None:
        self.sam = sam.to(device).eval()
        self.device, self.dtype = device, dtype
        self.transform = ResizeLongestSide(sam.image_encoder.img_size)

    def _embed(self, images: list[np.ndarray]) -> tuple[torch.Tensor, list[tuple[int, int]]]:
        """SAM image embeddings (B, C, h, w) of RGB uint8 images, and each image's resized (H, W) before padding."""
        inputs, sizes = [], []
        for img in images:
            resized = torch.as_tensor(self.transform.apply_image(img), device=self.device).permute(2, 0, 1)
            sizes.append(tuple(resized.shape[-2:]))
            inputs.append(self.sam.preprocess(resized[None].float()))
        with autocast(self.device, self.dtype):
            return self.sam.image_encoder(torch.cat(inputs)), sizes

    @torch.inference_mode()
    def masks(self, images: list[np.ndarray], boxes: list[np.ndarray]) -> list[np.ndarray]:
        """Per image, the (H, W) bool union of the masks of its (N, 4) pixel xyxy boxes; all False when N = 0."""
        embeddings, sizes = self._embed(images)
        out = []
        for img, img_boxes, embedding, input_size in zip(images, boxes, embeddings, sizes):
            original = img.shape[:2]
            union = torch.zeros(original, dtype=torch.bool, device=self.device)
            prompts = self.transform.apply_boxes_torch(
                torch.as_tensor(img_boxes, dtype=torch.float32, device=self.device), original
            )
            for chunk in prompts.split(BOX_CHUNK) if len(prompts) else ():
                with autocast(self.device, self.dtype):
                    sparse, dense = self.sam.prompt_encoder(points=None, boxes=chunk, masks=None)
                    low_res, _ = self.sam.mask_decoder(
                        image_embeddings=embedding[None],
                        image_pe=self.sam.prompt_encoder.get_dense_pe(),
                        sparse_prompt_embeddings=sparse,
                        dense_prompt_embeddings=dense,
                        multimask_output=False,
                    )
                logits = self.sam.postprocess_masks(low_res.float(), input_size, original)
                union |= (logits > self.sam.mask_threshold).any(dim=0)[0]
            out.append(union.cpu().numpy())
        return out
