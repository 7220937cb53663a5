"""Value types of the params: each a strict pydantic type whose failure reads as one short "should …" line.

The sections validate strictly (``Section.model_config``), so what params.yaml says is what the code
gets: no string or boolean is turned into a number (``"8"`` and ``true`` are refused where a count is
expected); an integer is accepted where a real number is. Command-line flags parse their text with
the same types, laxly (``--batch-size 4``). This module imports pydantic only, so every stage starts without torch.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    StrictBool,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic_core import PydanticCustomError

DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")
DEVICES = "auto, cpu, cuda or cuda:N"
MAX_PIXELS = 40_000_000
"""Default cap on the pixels of one image, checked from the file header before decoding: 50x the largest
benchmark image (M3FD, 1024x768) and below Pillow's own decompression-bomb warning."""
PILLOW_PIXEL_LIMIT = 178_956_970
"""Pillow refuses images over twice its MAX_IMAGE_PIXELS, whatever a pixel cap says."""
_SEPARATORS = ("/", "\\", "\0")


def one_error(kind: Any, allowed: str) -> Any:
    """``kind``, with any failure reported as one error ``allowed`` (a union's members would each add one)."""

    def check(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError:
            raise PydanticCustomError("params", allowed) from None

    return Annotated[kind, WrapValidator(check)]


def folder_name_problem(value: object) -> str | None:
    """Why ``value`` cannot be one folder name (a path component), or None when it can."""
    if not isinstance(value, str) or not value.strip() or value in (".", "..") or any(s in value for s in _SEPARATORS):
        return "should be one folder name (no '/', '\\', '.' or '..')"
    return None


def _folder_name(value: str) -> str:
    if (problem := folder_name_problem(value)) is not None:
        raise PydanticCustomError("params", problem)
    return value


def _sub_path(value: str) -> str:
    if any(folder_name_problem(part) for part in value.split("/")):
        raise PydanticCustomError("params", "should be folder names joined by '/' (no '\\', '.', '..' or leading '/')")
    return value


Bool = one_error(StrictBool, "should be true or false")
PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
Real = Annotated[float, Field(strict=True, allow_inf_nan=False)]
"""A finite real number; an integer is accepted (and becomes a float), a string or boolean is not."""
Positive = Annotated[Real, Field(gt=0)]
NonNegative = Annotated[Real, Field(ge=0)]
Fraction = Annotated[Real, Field(ge=0, le=1)]
Seed = NonNegativeInt
Text = Annotated[str, Field(min_length=1)]
PathStr = Text
"""A file or folder; relative paths start at the repository root."""
FolderName = Annotated[Text, AfterValidator(_folder_name)]
"""A name that becomes a folder (dataset, split, method): one path component."""
SubPath = Annotated[Text, AfterValidator(_sub_path)]
"""A relative path that stays inside the folder it is joined to: folder names joined by ``/``."""
Device = one_error(Annotated[str, Field(pattern=f"^(?:{DEVICE_PATTERN.pattern})$")], f"should be {DEVICES}")
BatchSize = one_error(Literal["auto"] | PositiveInt, "should be auto or a positive integer")
ScaleInts = one_error(
    Annotated[list[PositiveInt], Field(min_length=2)],
    "should be a list of positive integers, one per scale (2 or more)",
)
MemoryBudget = one_error(Literal["auto"] | Positive, "should be auto or a positive number of GB")


def _dataset_split(value: str) -> str:
    dataset, sep, split = value.partition("/")
    if not sep or folder_name_problem(dataset) or folder_name_problem(split):
        raise PydanticCustomError("params", "should be '<dataset>/<split>', each one folder name")
    return value


DatasetSplit = Annotated[str, AfterValidator(_dataset_split)]
HeightWidth = one_error(
    PositiveInt | Annotated[list[PositiveInt], Field(min_length=2, max_length=2)] | None,
    "should be null, a positive integer or [height, width]",
)
MaxPixels = Annotated[int, Field(gt=0, le=PILLOW_PIXEL_LIMIT)]
VGG_POOLINGS = 4
"""Max-poolings of VGG19 before relu5_4, the deepest layer the losses read: each halves a crop."""
MIN_CROP = 2**VGG_POOLINGS
Crop = one_error(
    Annotated[int, Field(ge=MIN_CROP)],
    f"should be an integer of at least {MIN_CROP} (VGG19 halves a crop {VGG_POOLINGS} times before relu5_4)",
)
Amp = Literal["bf16", "none"]
Flip = one_error(Literal["auto"] | StrictBool, "should be auto, true or false")

# Registries held by heavier modules (tests/config/test_params.py checks each against its source).
FeatureSpace = Literal[
    "occo", "model1", "model2", "model3", "model4", "model5"
]  # occo.losses.contrastive.FEATURE_SPACES
DistanceForm = Literal["code", "paper"]  # occo.losses.contrastive.DISTANCE_FORMS
CxVariant = Literal["bounded", "literal", "mechrez"]  # occo.losses.contextual.CX_VARIANTS
NetworkName = Literal["fifn", "rfn_nest"]  # occo.nn.networks.NETWORKS
LossTermName = Literal["occo", "rfn", "ccl"]  # occo.losses.total.LOSS_TERMS
VGG_LOSS_TERMS = frozenset({"occo", "ccl"})  # the LOSS_TERMS whose ``vgg`` is set: they load VGG19
RfnForm = Literal["fixed", "code", "paper"]  # occo.losses.rfn.RFN_FORMS
TrainStage = Literal["fusion", "both", "published"]  # occo.train.stages.TRAIN_STAGES
Compat = Literal["fixed", "official"]  # occo.nn.fifn.blocks.SPATIAL_ENHANCEMENTS & occo.nn.fifn.model.INFERENCE_RULES
# (and occo.losses.objective.OBJECTIVES, occo.train.routine.ROUTINES, occo.nn.fuse.FUSE_ROUTINES)
SectionCompat = Annotated[Compat, BeforeValidator(lambda v: "fixed" if v is None else v)]
"""A section's ``compat``: null follows the top-level ``compat`` inside ``Params`` (alone, null is fixed)."""
TrainPrecision = Literal["auto", "bf16", "fp32"]  # "auto" + occo.train.routine.AUTOCAST_DTYPES
SpatialGate = Literal["sigmoid", "softmax"]  # occo.nn.fifn.blocks.GATES
TokenNorm = Literal["layer", "batch"]  # occo.nn.fifn.blocks.TOKEN_NORMS
AttentionRouting = Literal["code", "paper"]  # occo.nn.fifn.blocks.ATTENTION_ROUTINGS
MetricVariant = Literal["matlab", "cddfuse"]  # occo.metrics.suite.VARIANTS
Baseline = Literal["visible", "infrared", "mean", "max"]  # occo.metrics.evaluate.BASELINES
OCCO_METHOD = "occo"
"""The method name of ``fuse.checkpoint``'s images (data/fused/occo)."""
RESERVED_METHODS = (OCCO_METHOD, *get_args(Baseline))
"""Method names that no extra checkpoint, external folder or published result may take."""
Metric = Literal["EN", "SF", "AG", "CC", "SD", "MI", "VIF", "Qabf", "SSIM", "SCD", "PSNR"]  # occo.metrics.suite.METRICS
Detector = Literal["groundingdino", "transformers"]  # occo.masks.models.DETECTORS
SamModel = Literal["vit_h", "vit_l", "vit_b"]  # occo.masks.sam.SAM_MODELS
ModelInit = Literal["pretrained", "random", "tiny"]  # occo.masks.models.MODEL_INITS
Precision = Literal["auto", "fp32", "bf16", "fp16"]  # "auto" + occo.masks.models.PRECISIONS
YoloModel = Literal["yolov5n", "yolov5s", "yolov5m", "yolov5l", "yolov5x"]  # occo.downstream.detect.MODEL_SIZES
LabelFormat = Literal["yolo", "voc"]  # occo.downstream.labels.FORMATS
Encoder = Literal["resnet18", "resnet34", "resnet50", "resnet101"]  # occo.fetch.weights.ENCODER_WEIGHTS
FusionMetrics = one_error(
    Literal["all"] | list[Metric], "should be all or a list of EN, SF, AG, CC, SD, MI, VIF, Qabf, SSIM, SCD, PSNR"
)
