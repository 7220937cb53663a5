"""Object detection on fused images (paper §4.3, Table 4 MSRS, Table 5 M3FD): YOLOv5 trained and tested per method.

One module per concern: :mod:`~occo.downstream.detect.data` (the YOLO dataset of a dataset × method:
splits, linked images, converted labels), :mod:`~occo.downstream.detect.train` (ultralytics set up
offline, the resumable training run, validation), :mod:`~occo.downstream.detect.scores` (the metrics
JSON, the table) and :mod:`~occo.downstream.detect.run` (the stage: :func:`run_detect`).
"""

from occo.downstream.detect.run import DETECT_OUTPUTS, detect_method, run_detect
from occo.downstream.detect.train import MODEL_SIZES

__all__ = ["MODEL_SIZES", "DETECT_OUTPUTS", "detect_method", "run_detect"]
