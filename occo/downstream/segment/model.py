"""The segmenter: DeepLabV3+ (segmentation-models-pytorch) with an ImageNet encoder, and the precision it runs at.

Every method's segmenter starts from the same weights: the encoder from ``segment.weights`` or the
registry copy (or seeded random init for smoke runs), decoder and head drawn from ``segment.seed``.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

import segmentation_models_pytorch as smp
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from occo.config import Segment
from occo.data import DataError
from occo.data.io import read_checkpoint
from occo.downstream.segment.data import CLASS_NAMES
from occo.fetch.weights import ENCODER_WEIGHTS, resolve_weights

log = logging.getLogger(__name__)


def encoder_weights_path(cfg: Segment, root: Path) -> Path | None:
    """The ImageNet encoder weights to start from, or None for random init (``encoder_weights: null``).

    ``segment.weights`` (a local file or HF snapshot folder) wins; else the registry copy in
    ``models/pretrained/``, downloaded when absent. WeightsUnavailableError (naming file, URL and
    ``segment.weights``) when neither is there.
    """
    if cfg.encoder_weights is None:
        return None
    return resolve_weights(ENCODER_WEIGHTS[cfg.encoder], cfg.weights, param="segment.weights", root=root)


def load_encoder_weights(encoder: torch.nn.Module, path: Path) -> None:
    """Load an ImageNet ResNet state dict into ``encoder``: smp-hub ``model.safetensors`` (or its
    snapshot folder) or a torchvision ``.pth``; the classifier (``fc.*``) is dropped. DataError naming
    the file when it cannot be read or does not fit the encoder."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.safetensors"
    try:
        if path.suffix == ".safetensors":
            state = load_file(str(path), device="cpu")
        else:
            state = read_checkpoint(path, remedy="point segment.weights to ImageNet weights (.safetensors or .pth)")
            state = state.get("state_dict", state)
        if not isinstance(state, dict):
            raise DataError(f"encoder weights {path} hold a {type(state).__name__}, not a state dict")
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        torch.nn.Module.load_state_dict(encoder, state, strict=True)
    except DataError:
        raise
    except (OSError, RuntimeError, SafetensorError, EOFError, ValueError) as exc:
        raise DataError(f"cannot load encoder weights {path}: {' '.join(str(exc).split())[:400]}") from exc


def build_segmenter(
    encoder: str, *, seed: int, weights: Path | None, n_classes: int = len(CLASS_NAMES)
) -> torch.nn.Module:
    """DeepLabV3+ (output stride 16, smp defaults) with ``encoder``; decoder and head drawn from
    ``seed`` (the global RNG is left untouched), encoder from ``weights`` (None = random, also seeded).

    The same arguments give bit-identical initial weights, so every method starts from the same point.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = smp.DeepLabV3Plus(encoder_name=encoder, encoder_weights=None, classes=n_classes)
    if weights is not None:
        load_encoder_weights(model.encoder, weights)
        log.info("DeepLabV3+ %s: ImageNet encoder from %s", encoder, weights)
    else:
        log.warning("DeepLabV3+ %s: RANDOM encoder (segment.encoder_weights is null); not for paper numbers", encoder)
    return model


@dataclass(frozen=True)
class Autocast:
    """The precision the segmenter runs at: bf16 autocast on CUDA (fp16 + GradScaler where bf16 is
    unsupported); float32 on CPU or with ``segment.amp: false``."""

    dtype: torch.dtype | None

    @classmethod
    def choose(cls, amp: bool, device: torch.device) -> Autocast:
        """The setting for ``device`` when ``amp`` asks for autocast."""
        if not amp or device.type != "cuda":
            return cls(None)
        return cls(torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)

    def autocast(self) -> contextlib.AbstractContextManager:
        """The context to run the forward pass in."""
        return torch.autocast("cuda", dtype=self.dtype) if self.dtype is not None else contextlib.nullcontext()

    @property
    def scaled(self) -> bool:
        """Whether gradients need scaling (fp16)."""
        return self.dtype == torch.float16
