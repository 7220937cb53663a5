"""The schema of params.yaml: one pydantic-validated TypedDict per section, composed into ``Params``.

Every stage validates the whole file when it starts (``occo.stage.run_stage``) and reports every problem
at once, one line each, naming the key, the value and what is allowed. A section or key that is absent
stays absent (the library's own default applies: tests and older experiments write partial files); a
present one must be valid, an unknown one is an error naming the known keys. Stages receive the file's
values as written (validation converts nothing behind their back, so run fingerprints and reports see
params.yaml's own numbers); booleans are strict, so the library's ``bool(...)`` agrees with the schema.

Adding a param is one line in its section's class (and its row in README.md's table);
tests/test_params.py fails until every key of the repository's params.yaml is declared here. Where a
module holds the registry of allowed values (``FEATURE_SPACES``, ``CX_VARIANTS``, ``DETECTORS``, …) the
Literal below repeats its names, so that this module stays cheap to import (pydantic and yaml only: no
torch, no model code in every stage's start or DVC dependencies); tests/test_params.py checks each
Literal against its registry.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml
from pydantic import (
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveInt,
    StrictBool,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    with_config,
)
from pydantic_core import ErrorDetails, PydanticCustomError
from typing_extensions import NotRequired, Required, TypedDict, is_typeddict

DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")
DEVICES = "auto, cpu, cuda or cuda:N"


def one_error(kind: Any, allowed: str) -> Any:
    """``kind``, with any failure reported as one error ``allowed`` (a union's members would each add one)."""

    def check(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError:
            raise PydanticCustomError("params", allowed) from None

    return Annotated[kind, WrapValidator(check)]


# ----------------------------------------------------------------------------- value types

Bool = one_error(StrictBool, "should be true or false")
Name = Annotated[str, Field(min_length=1)]
PathStr = Name  # a file or folder, relative to the repository root
Fraction = Annotated[float, Field(ge=0, le=1)]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Seed = NonNegativeInt
Device = one_error(Annotated[str, Field(pattern=f"^(?:{DEVICE_PATTERN.pattern})$")], f"should be {DEVICES}")
BatchSize = one_error(Literal["auto"] | PositiveInt, "should be auto or a positive integer")
ScaleInts = one_error(
    Annotated[list[PositiveInt], Field(min_length=2)], "should be a list of positive integers, one per scale (2 or more)"
)
MemoryBudget = one_error(Literal["auto"] | Positive, "should be auto or a positive number of GB")
DatasetSplit = one_error(Annotated[str, Field(pattern=r"^[^/]+/[^/]+$")], "should be '<dataset>/<split>'")
HeightWidth = one_error(
    PositiveInt | Annotated[list[PositiveInt], Field(min_length=2, max_length=2)] | None,
    "should be null, a positive integer or [height, width]",
)
Amp = Literal["bf16", "none"]

# Registries held by heavier modules (tests/test_params.py checks each against its source).
FeatureSpace = Literal["occo", "model1", "model2", "model3", "model4", "model5"]  # occo.losses.contrastive.FEATURE_SPACES
DistanceForm = Literal["code", "paper"]  # occo.losses.contrastive.DISTANCE_FORMS
CxVariant = Literal["bounded", "literal", "mechrez"]  # occo.losses.contextual.CX_VARIANTS
Compat = Literal["fixed", "official"]  # occo.nn.blocks.SPATIAL_ENHANCEMENTS & occo.nn.fifn.INFERENCE_RULES
SpatialGate = Literal["sigmoid", "softmax"]  # occo.nn.blocks.GATES
TokenNorm = Literal["layer", "batch"]  # occo.nn.blocks.TOKEN_NORMS
AttentionRouting = Literal["code", "paper"]  # occo.nn.blocks.ATTENTION_ROUTINGS
MetricVariant = Literal["matlab", "cddfuse"]  # occo.metrics.suite.VARIANTS
Baseline = Literal["visible", "infrared", "mean", "max"]  # occo.metrics.evaluate.BASELINES
Metric = Literal["EN", "SF", "AG", "CC", "SD", "MI", "VIF", "Qabf", "SSIM", "SCD", "PSNR"]  # occo.metrics.suite.METRICS
Detector = Literal["groundingdino", "transformers"]  # occo.masks.models.DETECTORS
SamModel = Literal["vit_h", "vit_l", "vit_b"]  # occo.masks.sam.SAM_MODELS
Precision = Literal["auto", "fp32", "bf16", "fp16"]  # "auto" + occo.masks.models.PRECISIONS
YoloModel = Literal["yolov5n", "yolov5s", "yolov5m", "yolov5l", "yolov5x"]  # occo.downstream.detect.MODEL_SIZES
LabelFormat = Literal["yolo", "voc"]  # occo.downstream.labels.FORMATS
Encoder = Literal["resnet18", "resnet34", "resnet50", "resnet101"]  # occo.weights.ENCODER_WEIGHTS
FusionMetrics = one_error(
    Literal["all"] | list[Metric], f"should be all or a list of {', '.join(get_args(Metric))}"
)

SECTION = ConfigDict(extra="forbid")


# ----------------------------------------------------------------------------- sections


@with_config(SECTION)
class LossWeights(TypedDict, total=False):
    """The loss weights at the top level (paper §3.3–3.4)."""

    omega1: NonNegative  # Eq. 7
    omega2: NonNegative  # Eq. 7
    omega3: Fraction  # Eq. 12: mixing of two similarities
    omega4: NonNegative  # Eq. 19
    omega5: NonNegative  # Eq. 19
    omega6: NonNegative  # Eq. 20


@with_config(SECTION)
class Synthetic(TypedDict, total=False):
    n_train: NonNegativeInt
    n_test: NonNegativeInt
    height: PositiveInt
    width: PositiveInt
    seed: Seed


@with_config(SECTION)
class DatasetSource(TypedDict, total=False):
    source: Required[PathStr]  # folder, archive or "registry"
    split: Name | None
    limit: PositiveInt | None
    optional: Bool


@with_config(SECTION)
class Download(TypedDict, total=False):
    synthetic: Synthetic | None
    max_pixels: PositiveInt
    max_unpack_ratio: Positive
    datasets: dict[str, DatasetSource] | None


@with_config(SECTION)
class Evaluate(TypedDict, total=False):
    variant: MetricVariant
    device: Device
    batch_size: BatchSize
    baselines: list[Baseline]
    splits: dict[str, Name] | None
    external: dict[str, dict[str, PathStr] | None] | None


Masks = with_config(SECTION)(
    TypedDict(  # functional form: `import` is a Python keyword
        "Masks",
        {
            "prompt": Name,
            "box_threshold": Fraction,
            "text_threshold": Fraction,
            "nms_iou": Fraction,
            "max_boxes": PositiveInt,
            "detector": Detector,
            "sam_model": SamModel,
            "device": Device,
            "precision": Precision,
            "batch_size": BatchSize,
            "datasets": dict[str, list[Name]] | None,
            "gallery": NonNegativeInt,
            "import": dict[str, dict[str, PathStr] | None] | None,
            "random_init": Bool,
            "sam_checkpoint": PathStr | None,
            "gdino_checkpoint": PathStr | None,
            "text_encoder": PathStr | None,
            "hf_model": PathStr | None,
        },
        total=False,
    )
)


@with_config(SECTION)
class Arch(TypedDict, total=False):
    compat: Compat
    spatial_enhancement: Bool
    cross_channel: Bool
    cross_attention: Bool
    spatial_gate: SpatialGate
    token_norm: TokenNorm
    attention_routing: AttentionRouting
    widths: ScaleInts
    heads: ScaleInts


@with_config(SECTION)
class Loss(TypedDict, total=False):
    cx_variant: CxVariant
    distance_form: DistanceForm


@with_config(SECTION)
class Ablation(TypedDict, total=False):
    feature_space: FeatureSpace


@with_config(SECTION)
class Train(TypedDict, total=False):
    dataset: Name
    split: Name
    epochs: PositiveInt  # 0 would write an untrained model
    max_steps: PositiveInt | None
    batch_size: PositiveInt
    crops_per_image: PositiveInt
    crop: PositiveInt
    flip: Bool
    lr: Positive
    seed: Seed
    amp: Amp
    compile: Bool
    num_workers: NonNegativeInt
    checkpoint_every: PositiveInt
    log_every: PositiveInt
    max_nonfinite: PositiveInt
    vgg_weights: PathStr | None
    vgg_random_init: Bool


@with_config(SECTION)
class Fuse(TypedDict, total=False):
    checkpoint: PathStr
    extra_checkpoints: dict[str, PathStr] | None
    device: Device
    batch_size: BatchSize
    max_pixels: PositiveInt
    memory_budget_gb: MemoryBudget
    datasets: list[DatasetSplit] | None


@with_config(SECTION)
class DetectDataset(TypedDict, total=False):
    train: Required[Name]
    val: Required[Name]
    labels: Required[PathStr]
    format: Required[LabelFormat]
    classes: Required[Annotated[list[Name], Field(min_length=1)]]
    paper_classes: Required[Annotated[list[Name], Field(min_length=1)]]
    source_classes: list[Name] | None
    val_fraction: Annotated[float, Field(gt=0, lt=1)] | None


@with_config(SECTION)
class Detect(TypedDict, total=False):
    model: YoloModel
    weights: PathStr | None
    pretrained: Bool
    epochs: PositiveInt
    imgsz: PositiveInt
    batch: PositiveInt
    nbs: PositiveInt
    warmup_epochs: NonNegative
    workers: NonNegativeInt
    device: Device
    amp: Amp
    seed: Seed
    methods: list[Name]
    run: list[Name] | None
    datasets: dict[str, DetectDataset]


@with_config(SECTION)
class Segment(TypedDict, total=False):
    dataset: Name
    train_split: Name
    test_split: Name
    methods: list[Name]
    encoder: Encoder
    encoder_weights: Literal["imagenet"] | None
    weights: PathStr | None
    epochs: PositiveInt
    batch_size: PositiveInt
    lr: Positive
    momentum: Annotated[float, Field(ge=0, lt=1)]
    weight_decay: NonNegative
    poly_power: NonNegative
    crop: HeightWidth
    size: HeightWidth
    flip: Bool
    num_workers: NonNegativeInt
    device: Device
    amp: Bool
    seed: Seed


@with_config(SECTION)
class Gallery(TypedDict, total=False):
    dataset: Name
    split: Name
    ids: list[Name | int] | None
    n: NonNegativeInt


@with_config(SECTION)
class Report(TypedDict, total=False):
    gallery: Gallery
    fusion_metrics: FusionMetrics
    compare_paper: Bool
    ours: list[Name]


@with_config(SECTION)
class Params(LossWeights, total=False):
    """The whole params.yaml."""

    download: Download
    evaluate: Evaluate
    masks: Masks
    arch: Arch
    loss: Loss
    ablation: Ablation
    train: Train
    fuse: Fuse
    detect: Detect
    segment: Segment
    report: Report


# ----------------------------------------------------------------------------- validation


class ParamsError(ValueError):
    """A params file that breaks the schema; ``problems`` holds one line per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


@cache
def _adapter() -> TypeAdapter[Params]:
    return TypeAdapter(Params)


def _inner(kind: Any) -> Any:
    """The section, mapping or list type inside ``kind``'s Annotated / Required / Optional wrappers."""
    while True:
        origin = get_origin(kind)
        if origin in (Annotated, Required, NotRequired):
            kind = get_args(kind)[0]
        elif origin in (Union, UnionType):
            members = [a for a in get_args(kind) if is_typeddict(a) or get_origin(a) in (dict, list, Annotated)]
            if not members:
                return kind
            kind = members[0]
        else:
            return kind


def keys_at(loc: Sequence[str | int], schema: Any = Params) -> list[str] | None:
    """The keys the schema knows at ``loc`` (a section, a mapping entry, …); None where no section is."""
    kind = _inner(schema)
    for part in loc:
        if is_typeddict(kind):
            kind = get_type_hints(kind, include_extras=True).get(str(part))
        elif get_origin(kind) is dict:
            kind = get_args(kind)[1]
        elif get_origin(kind) is list:
            kind = get_args(kind)[0]
        else:
            return None
        kind = _inner(kind)
    return sorted(get_type_hints(kind)) if is_typeddict(kind) else None


def dotted(loc: Sequence[str | int]) -> str:
    """``('fuse', 'datasets', 2)`` → ``fuse.datasets[2]``."""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")


def _show(value: Any) -> str:
    """``repr(value)``, cut to 80 characters (one readable line)."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:76]} ..."


def allowed(error: ErrorDetails) -> str:
    """What a schema error says is allowed (pydantic's message, "Input should …" → "should …")."""
    return re.sub(r"^(Input|String|Value|List|Dictionary) should", "should", error["msg"])


def describe(error: ErrorDetails) -> str:
    """One schema error as ``<dotted.key> = <value>: <what is allowed>``."""
    loc = error["loc"]
    if error["type"] == "missing":
        return f"{dotted(loc)}: missing (required)"
    if error["type"] == "extra_forbidden":
        known = keys_at(loc[:-1]) or []
        return f"{dotted(loc)} = {_show(error['input'])}: unknown key; known keys: {', '.join(known)}"
    return f"{dotted(loc)} = {_show(error['input'])}: {allowed(error)}"


def validate_params(raw: Any, source: str = "params.yaml") -> dict[str, Any]:
    """``raw`` (a parsed params file) checked against ``Params``; ParamsError listing every problem.

    Returns ``raw`` itself, values as written (see the module docstring).
    """
    if not isinstance(raw, Mapping):
        raise ParamsError([f"{source}: should be a mapping of sections, got {_show(raw)}"])
    try:
        _adapter().validate_python(raw)
    except ValidationError as err:
        raise ParamsError([f"{source} {describe(e)}" for e in err.errors()]) from None
    return dict(raw)


def load_params(path: Path) -> dict[str, Any]:
    """Read and validate a params file; ParamsError (one line each) for an unreadable file or bad entries."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ParamsError([f"{path}: cannot read ({err.strerror or err})"]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ParamsError([f"{path}: not valid YAML{where}: {problem}"]) from None
    return validate_params({} if raw is None else raw, str(path))


def check_value(kind: Any, value: Any, name: str) -> Any:
    """``value`` validated as one schema type (the command-line flags share the params' types); else
    ValueError ``<name> = <value>: <what is allowed>``."""
    try:
        return TypeAdapter(kind).validate_python(value)
    except ValidationError as err:
        raise ValueError(f"{name} = {_show(value)}: {allowed(err.errors()[0])}") from None
