"""OCCO training losses: pixel loss (Eq. 15-19), contextual contrastive loss (Eq. 5-14), total (Eq. 20),
Model-4's masked intensity loss (Eq. 21).

The training loop builds ``OCCOLoss.from_config(cfg)`` once, moves it to the device with the
network, and calls it on each batch of G·n images (default 12 = 4 groups of 3) as
``loss(fused, ir=, vi=, ir_mask=, vi_mask=)``: the modalities are keyword-only throughout.
"""

from occo.losses.contextual import CX_VARIANTS, ContextualLoss
from occo.losses.contrastive import DISTANCE_FORMS, FEATURE_SPACES, ContextualContrastiveLoss, decompose_masks
from occo.losses.masked import MaskedIntensityLoss
from occo.losses.pixel import PixelLoss
from occo.losses.term_means import TermMeans
from occo.losses.total import NonFiniteLossError, OCCOLoss
from occo.losses.vgg import VGG19Features, WeightsUnavailableError

__all__ = [
    "CX_VARIANTS",
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
