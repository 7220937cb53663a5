"""The fusion networks (``occo.nn.networks``: FIFN, OCCO's, and RFN-Nest), built from the ``arch`` params
(``occo.config.Arch``), and their checkpoints."""

from occo.nn.checkpoint import CheckpointError, convert_checkpoint, load_model, official_key, save_checkpoint
from occo.nn.fifn.model import FIFB, FIFN, build_model, fuse_y, normalise_output
from occo.nn.networks import NETWORKS, build_network, fuse_luminance, network

__all__ = [
    "FIFB",
    "FIFN",
    "NETWORKS",
    "CheckpointError",
    "build_model",
    "build_network",
    "convert_checkpoint",
    "fuse_luminance",
    "fuse_y",
    "load_model",
    "network",
    "normalise_output",
    "official_key",
    "save_checkpoint",
]
