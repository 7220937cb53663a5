"""The OCCO fusion network (FIFN), its configuration and checkpoints."""

from occo.nn.checkpoint import CheckpointError, convert_checkpoint, load_model, official_key, save_checkpoint
from occo.nn.config import ArchConfig, build_model
from occo.nn.fifn.model import FIFB, FIFN, fuse_y, normalise_output

__all__ = [
    "FIFB",
    "FIFN",
    "ArchConfig",
    "CheckpointError",
    "build_model",
    "convert_checkpoint",
    "fuse_y",
    "load_model",
    "normalise_output",
    "official_key",
    "save_checkpoint",
]
