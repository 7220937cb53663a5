"""RFN-Nest (§4.5, Fig. 20): the NestFuse auto-encoder with the residual fusion network, tiled inference, and the
authors' published weights."""

from occo.nn.rfn_nest.model import NestAutoEncoder, RFNNest

__all__ = ["NestAutoEncoder", "RFNNest"]
