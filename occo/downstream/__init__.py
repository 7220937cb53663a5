"""Downstream tasks on fused images: object detection (ultralytics YOLO) and semantic segmentation (smp)."""
