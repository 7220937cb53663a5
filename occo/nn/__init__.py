"""The OCCO fusion network (FIFN), built from the ``arch`` params (``occo.config.Arch``), and its checkpoints."""

from occo.nn.checkpoint import CheckpointError, convert_checkpoint, load_model, official_key, save_checkpoint
from occo.nn.fifn.model import FIFB, FIFN, build_model, fuse_y, normalise_output

__all__ = [
    "FIFB",
    "FIFN",
    "CheckpointError",
    "build_model",
    "convert_checkpoint",
    "fuse_y",
    "load_model",
    "normalise_output",
    "official_key",
    "save_checkpoint",
]
