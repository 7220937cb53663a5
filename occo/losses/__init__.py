"""Training losses: pixel loss (Eq. 15-19), contextual contrastive loss (Eq. 5-14), OCCO's total (Eq. 20),
Model-4's masked intensity loss (Eq. 21), RFN-Nest's L_RFN (Eq. 22-23) and auto-encoder loss, and the total
loss the params assemble from named terms (``loss.terms``: Eq. 20, Eq. 22, Eq. 24).

The training loop builds ``build_loss(cfg)`` once, moves it to the device with the network, and calls it on
each batch of G·n images (default 12 = 4 groups of 3) as ``loss(fused, ir=, vi=, ir_mask=, vi_mask=)`` (and
``features=`` for L_RFN): the modalities are keyword-only throughout.
"""

from occo.losses.contextual import CX_VARIANTS, ContextualLoss
from occo.losses.contrastive import DISTANCE_FORMS, FEATURE_SPACES, ContextualContrastiveLoss, decompose_masks
from occo.losses.masked import MaskedIntensityLoss
from occo.losses.pixel import PixelLoss
from occo.losses.rfn import RFN_FORMS, AutoencoderLoss, RFNLoss
from occo.losses.term_means import TermMeans
from occo.losses.total import LOSS_TERMS, NonFiniteLossError, OCCOLoss, TotalLoss, build_loss
from occo.losses.vgg import VGG19Features, WeightsUnavailableError

__all__ = [
    "CX_VARIANTS",
    "LOSS_TERMS",
    "RFN_FORMS",
    "AutoencoderLoss",
    "RFNLoss",
    "TotalLoss",
    "build_loss",
    "DISTANCE_FORMS",
    "FEATURE_SPACES",
    "ContextualContrastiveLoss",
    "ContextualLoss",
    "MaskedIntensityLoss",
    "NonFiniteLossError",
    "OCCOLoss",
    "PixelLoss",
    "TermMeans",
    "VGG19Features",
    "WeightsUnavailableError",
    "decompose_masks",
]
