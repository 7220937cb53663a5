"""Typed configuration: params.yaml as frozen pydantic models, one per section, each default in one place.

``load_params(path)`` reads and validates the file into ``Params``; a stage receives its section
(``cfg.train``, ``cfg.segment``, …). docs/params.md is generated from the field descriptions.
"""

from occo.config.load import ParamsError, as_dict, load_params, override, validate_params
from occo.config.sections import (
    Ablation,
    Arch,
    DatasetSource,
    Detect,
    DetectDataset,
    Download,
    Evaluate,
    Fuse,
    Gallery,
    Loss,
    Masks,
    Params,
    Report,
    Segment,
    Synthetic,
    Train,
)

__all__ = [
    "Ablation",
    "Arch",
    "DatasetSource",
    "Detect",
    "DetectDataset",
    "Download",
    "Evaluate",
    "Fuse",
    "Gallery",
    "Loss",
    "Masks",
    "Params",
    "ParamsError",
    "Report",
    "Segment",
    "Synthetic",
    "Train",
    "as_dict",
    "load_params",
    "override",
    "validate_params",
]
