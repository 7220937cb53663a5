"""Training: crops and batches of masked pairs (``occo.train.data``) and the loop (``occo.train.loop``)."""

from occo.train.data import BatchPlan, CropDataset, MaskedPair, crop_origins, find_training_pairs
from occo.train.loop import train

__all__ = ["BatchPlan", "CropDataset", "MaskedPair", "crop_origins", "find_training_pairs", "train"]
