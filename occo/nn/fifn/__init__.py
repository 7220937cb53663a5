"""FIFN, the OCCO fusion network (paper §3.1): its blocks, the network, tiled inference."""

from occo.nn.fifn.model import FIFB, FIFN, build_model, fuse_y, normalise_output

__all__ = ["FIFB", "FIFN", "build_model", "fuse_y", "normalise_output"]
