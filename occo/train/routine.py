"""The two training routines, ``train.compat``: ours (``fixed``) and the authors' ``train_ep`` (``official``).

Each field is one way the routines differ (docs/fidelity.md, Training); what they share (Adam at
``train.lr``, batches of 4 groups, 2 crops of 256 pixels per image containing mask pixels, BatchNorm in
training mode) is the params' and needs no entry here. ``train.precision: auto`` and ``train.flip: auto``
take the routine's value; an explicit value overrides it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from occo.config import Train


@dataclass(frozen=True)
class Routine:
    """How one training step treats its data and output.

    ``per_image_output``: min-max the network output per image (else over the whole batch, ``train_ep``
    line 169, one min and max for the 12 crops); ``precision``: what ``auto`` means on CUDA (the CPU runs
    fp32 unless bf16 is asked for); ``flip``: what ``auto`` means for random horizontal flips;
    ``scaling``: how image files become [0, 1] inputs (``occo.train.data.SCALINGS``: ``range``, the full
    range of the file's type, as at inference; ``minmax``, each file stretched to its own min and max);
    ``skip_maskless``: leave out pairs whose two masks are empty (``loadmask``'s ``continue``).
    """

    per_image_output: bool
    precision: str
    flip: bool
    scaling: str
    skip_maskless: bool


ROUTINES: dict[str, Routine] = {
    "fixed": Routine(per_image_output=True, precision="bf16", flip=True, scaling="range", skip_maskless=False),
    "official": Routine(per_image_output=False, precision="fp32", flip=False, scaling="minmax", skip_maskless=True),
}
"""``train.compat`` → its routine."""

AUTOCAST_DTYPES: dict[str, torch.dtype | None] = {"bf16": torch.bfloat16, "fp32": None}
"""``train.precision`` (resolved) → the autocast dtype of the forward pass (None: no autocast, float32)."""


def routine_of(train: Train) -> Routine:
    """The routine of ``train.compat``."""
    return ROUTINES[train.compat]


def training_precision(train: Train, device: torch.device) -> str:
    """``train.precision`` resolved: ``auto`` is the routine's precision on CUDA and fp32 on the CPU; bf16 and
    fp32 are used as asked, on any device (bf16 autocast runs on the CPU too)."""
    if train.precision != "auto":
        return train.precision
    return routine_of(train).precision if device.type == "cuda" else "fp32"


def training_flip(train: Train) -> bool:
    """``train.flip`` resolved: ``auto`` is the routine's choice (ours flips, the authors' code does not)."""
    return routine_of(train).flip if train.flip == "auto" else train.flip


def training_autocast(train: Train, device: torch.device) -> contextlib.AbstractContextManager:
    """The forward pass's autocast: bf16 where :func:`training_precision` is bf16 (CUDA or CPU; the losses
    still compute their similarities and pixel terms in float32), nothing under fp32."""
    dtype = AUTOCAST_DTYPES[training_precision(train, device)]
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)
