"""Semantic segmentation on fused images (paper §4.3, Table 3, MSRS): DeepLabV3+ trained and tested per method.

One module per concern: :mod:`~occo.downstream.segment.data` (samples, label maps, dataset, transforms),
:mod:`~occo.downstream.segment.model` (DeepLabV3+ and its encoder weights),
:mod:`~occo.downstream.segment.train` (one method's resumable training), :mod:`~occo.downstream.segment.scores`
(confusion matrix, IoU, the table) and :mod:`~occo.downstream.segment.run` (the stage: :func:`run_segment`).
"""

from occo.downstream.segment.data import CLASS_NAMES
from occo.downstream.segment.run import SEGMENT_OUTPUTS, run_segment
from occo.downstream.segment.train import train_method

__all__ = ["CLASS_NAMES", "SEGMENT_OUTPUTS", "run_segment", "train_method"]
