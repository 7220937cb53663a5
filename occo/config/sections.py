"""params.yaml as typed, frozen models: one class per section, each field with its default and one line of doc.

These classes are the single home of every default: params.yaml repeats them (a test keeps the two
equal) and docs/params.md is generated from the descriptions (``python -m occo.config.table``). A
stage receives its section as one of these objects; the library reads attributes, never a dict.
Adding a param is one field here, its line in params.yaml, and `make params-table`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ModelWrapValidatorHandler, PrivateAttr, model_validator
from pydantic_core import PydanticCustomError

from occo.config.types import (
    MAX_PIXELS,
    RESERVED_METHODS,
    Amp,
    AttentionRouting,
    Baseline,
    BatchSize,
    Bool,
    Compat,
    Crop,
    CxVariant,
    DatasetSplit,
    Detector,
    Device,
    DistanceForm,
    Encoder,
    FeatureSpace,
    Flip,
    FolderName,
    Fraction,
    FusionMetrics,
    HeightWidth,
    LabelFormat,
    LossTermName,
    MaxPixels,
    MemoryBudget,
    MetricVariant,
    ModelInit,
    NetworkName,
    NonNegative,
    NonNegativeInt,
    PathStr,
    Positive,
    PositiveInt,
    Precision,
    Real,
    RfnForm,
    SamModel,
    ScaleInts,
    SectionCompat,
    Seed,
    SpatialGate,
    SubPath,
    Text,
    TokenNorm,
    TrainPrecision,
    TrainStage,
    YoloModel,
)


def param(default: Any, doc: str, **constraints: Any) -> Any:
    """A field with its default and its one-line description (the row of docs/params.md)."""
    return Field(default, description=doc, **constraints)


def required(doc: str) -> Any:
    """A field every entry must give."""
    return Field(description=doc)


class Section(BaseModel):
    """A params section: unknown keys are errors, values are strict and the object is frozen."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, populate_by_name=True)


# ----------------------------------------------------------------------------- download


class Synthetic(Section):
    """The synthetic set: deterministic pairs with labels and masks, for offline runs."""

    n_train: NonNegativeInt = param(8, "synthetic training pairs")
    n_test: NonNegativeInt = param(4, "synthetic test pairs")
    height: PositiveInt = param(240, "image height in pixels")
    width: PositiveInt = param(320, "image width in pixels")
    seed: Seed = param(0, "seed of the synthetic scenes")


class DatasetSource(Section):
    """Where one dataset comes from."""

    source: PathStr = required("a local folder or archive (relative to the repository root), or `registry` to download")
    split: FolderName | None = param(None, "the split a flat folder holds")
    limit: PositiveInt | None = param(None, "keep the first N pairs per split (null = all)")
    optional: Bool = param(False, "skip the dataset when its local source is absent")


def _shared(folder: str, split: str) -> DatasetSource:
    return DatasetSource(source=f"../shared/{folder}", split=split, optional=True)


class Download(Section):
    """Stage `download`: the synthetic set and the datasets imported into data/raw."""

    synthetic: Synthetic | None = param(Synthetic(), "size and seed of the synthetic set (null = none)")
    max_pixels: MaxPixels = param(MAX_PIXELS, "an image with more pixels is refused at import (read from its header)")
    # Image datasets (PNG/JPEG inside) unpack to about their archive size and raw BMP/TIFF to a few times
    # it; deflate bombs reach about 1000 times.
    max_unpack_ratio: Real = param(100.0, "an archive may unpack to at most this many times its own size", ge=1)
    datasets: dict[FolderName, DatasetSource] = param(
        {
            "TNO": _shared("datasets/TNO", "test"),
            "TNO42": _shared("reference/tno42", "test"),
            "MSRS": _shared("datasets/MSRS", "test"),
            "M3FD": _shared("datasets/M3FD", "test"),
            "FMB": _shared("datasets/FMB", "train"),
        },
        "name -> source, split, limit, optional (docs/data.md)",
    )


# ----------------------------------------------------------------------------- masks


class Masks(Section):
    """Stage `masks`: Grounding DINO boxes for the prompt, SAM masks inside them, per modality (§3.2)."""

    prompt: Text = param(
        "The scene captures a group of pedestrians or cars.", "Grounding DINO text prompt (§4.1.2; Table 9)"
    )
    box_threshold: Fraction = param(0.35, "keep a box when its best prompt-token score exceeds this")
    text_threshold: Fraction = param(0.25, "tokens scoring above this form the box's phrase")
    nms_iou: Fraction = param(0.8, "IoU of the class-agnostic box suppression")
    max_boxes: PositiveInt = param(100, "best boxes kept per image")
    detector: Detector = param("groundingdino", "groundingdino (groundingdino-py) or transformers (its HF port)")
    sam_model: SamModel = param("vit_h", "SAM variant: vit_h, vit_l or vit_b")
    device: Device = param("auto", "auto (CUDA when available), cpu, cuda or cuda:N")
    precision: Precision = param("auto", "auto (bf16, else fp16, on CUDA; fp32 on CPU), fp32, bf16 or fp16")
    batch_size: BatchSize = param("auto", "most pairs per forward: auto = 1 on CPU, 8 on CUDA")
    memory_budget_gb: MemoryBudget = param(
        "auto", "working memory of a batch, auto = half of what the device has free: fewer pairs per batch"
    )
    datasets: dict[FolderName, list[FolderName]] = param({"FMB": ["train"]}, "{dataset: [splits]} to make masks for")
    gallery: NonNegativeInt = param(8, "overlay PNGs (boxes and mask tint) for the first N pairs of each split")
    import_: dict[FolderName, dict[FolderName, PathStr]] = Field(
        {}, alias="import", description="{dataset: {split: folder}}: import published mask_vi/ + mask_ir/ instead"
    )
    init: ModelInit = param(
        "pretrained", "pretrained; random (the configured models, random weights: rehearsals) or tiny (tests, smoke)"
    )
    sam_checkpoint: PathStr | None = param(None, "local SAM .pth; null = registry copy in models/pretrained")
    gdino_checkpoint: PathStr | None = param(None, "local groundingdino_swint_ogc.pth; null = registry")
    text_encoder: PathStr | None = param(None, "local bert-base-uncased folder; null = registry")
    hf_model: PathStr | None = param(None, "local grounding-dino-tiny folder (detector transformers); null = registry")


# ----------------------------------------------------------------------------- network, loss, training


OFFICIAL_FORMS = ("sigmoid", "layer", "code")
"""(spatial_gate, token_norm, attention_routing) of the public code, which ``compat: official`` reproduces."""


NETWORK_FIELDS: dict[str, tuple[str, ...]] = {
    "fifn": (
        "spatial_enhancement",
        "cross_channel",
        "cross_attention",
        "spatial_gate",
        "token_norm",
        "attention_routing",
        "widths",
        "heads",
    ),
    "rfn_nest": ("nest_widths",),
}
"""The ``arch`` fields each network reads; the other networks' fields keep their defaults. ``compat`` is every
network's: RFN-Nest, without BatchNorm, runs the same under both rules."""
NEST_SCALES = 4
"""Scales of RFN-Nest's encoder, RFN and nest decoder (the decoder's nest connections join exactly four)."""


class Arch(Section):
    """The fusion network (§3.1; RFN-Nest for §4.5); a checkpoint records its own and fusion follows it."""

    name: NetworkName = param("fifn", "network: fifn (OCCO's FIFN, §3.1) or rfn_nest (RFN-Nest, §4.5)")
    compat: SectionCompat = param(
        None,
        "fixed (bugs of the public code fixed) or official (reproduces its checkpoint); null: the top-level compat",
        validate_default=True,
    )
    spatial_enhancement: Bool = param(True, "Eq. 2 module (§4.4.2 ablation switch)")
    cross_channel: Bool = param(True, "Eq. 1 module (§4.4.2 ablation switch)")
    cross_attention: Bool = param(True, "§3.1 cross attention (§4.4.2 ablation switch)")
    spatial_gate: SpatialGate = param("sigmoid", "Eq. 2 gate: sigmoid (code) or softmax (paper)")
    token_norm: TokenNorm = param("layer", "Eq. 3 norm: layer (code) or batch (paper)")
    attention_routing: AttentionRouting = param(
        "code", "code: softmax(Q_vi K_ir) V_ir joins the visible stream; paper: the infrared one (§3.1)"
    )
    widths: ScaleInts = param([32, 64, 112, 160], "channels of the encoder's scales (the public network's)")
    heads: ScaleInts = param([4, 4, 4, 1], "attention heads per scale (each width divisible by its heads)")
    nest_widths: ScaleInts = param(
        [64, 112, 160, 208], "rfn_nest: channels of the NestFuse encoder's four scales (the published model's)"
    )

    @model_validator(mode="after")
    def _buildable(self) -> Arch:
        """One head count per width, each width divisible by its heads; compat=official runs the public code's
        forms (sigmoid gate, layer norm, code routing); the fields of other networks keep their defaults."""
        for network, fields in NETWORK_FIELDS.items():
            changed = [
                f for f in fields if network != self.name and getattr(self, f) != type(self).model_fields[f].default
            ]
            if changed:
                raise PydanticCustomError(
                    "params",
                    f"{', '.join(changed)} should keep the default: {network} settings, and name is {self.name}",
                )
        if len(self.nest_widths) != NEST_SCALES:
            raise PydanticCustomError("params", f"nest_widths should have {NEST_SCALES} entries, one per scale")
        if len(self.widths) != len(self.heads):
            raise PydanticCustomError("params", "widths and heads should have one entry per scale each")
        if any(w % h for w, h in zip(self.widths, self.heads)):
            raise PydanticCustomError("params", "each width should be divisible by its number of heads")
        if self.compat == "official" and (self.spatial_gate, self.token_norm, self.attention_routing) != OFFICIAL_FORMS:
            raise PydanticCustomError(
                "params",
                "compat official runs the public code: should keep spatial_gate sigmoid, token_norm layer, "
                "attention_routing code",
            )
        return self


OFFICIAL_LOSS_FORMS = {"cx_variant": ("bounded", "mechrez"), "distance_form": ("code",)}
"""The loss forms the authors' code has, which ``loss.compat: official`` computes as their code does."""


class Loss(Section):
    """The terms of the total loss and their forms (docs/fidelity.md)."""

    compat: SectionCompat = param(
        None,
        "fixed (our sound form) or official (the authors' objective, to 1e-4); null: the top-level compat",
        validate_default=True,
    )
    terms: list[LossTermName] = param(
        ["occo"], "summed terms: occo (Eq. 20), rfn (L_RFN, Eq. 22-23), ccl (beta x L_CCL, Eq. 24)"
    )
    cx_variant: CxVariant = param("bounded", "contextual similarity: bounded, literal (Eq. 9-12) or mechrez")
    distance_form: DistanceForm = param(
        "code", "Eq. 13-14: code (a ratio per VGG layer, relu4_4 x0.25) or paper (one ratio of the layer sum)"
    )
    rfn_form: RfnForm = param(
        "fixed", "L_RFN and the auto-encoder loss: fixed (the authors' code, two MS-SSIM bugs fixed), code or paper"
    )
    rfn_feature_weights: list[NonNegative] = param(
        [1.0, 10.0, 100.0, 1000.0], "w1(m) of Eq. 23, one per RFN-Nest scale, finest first"
    )
    rfn_w_vi: NonNegative = param(3.0, "w_vi of Eq. 23: weight of the visible features in the target")
    rfn_w_ir: NonNegative = param(6.0, "w_ir of Eq. 23: weight of the infrared features in the target")
    autoencoder_lambda: NonNegative = param(
        100.0, "RFN-Nest's auto-encoder loss, pixel + lambda x (1 - SSIM) (train.stage both)"
    )

    @model_validator(mode="after")
    def _terms(self) -> Loss:
        """At least one term, each once; ``occo`` holds ω6·L_CCL already, so ``ccl`` goes with ``rfn``."""
        if not self.terms or len(set(self.terms)) != len(self.terms):
            raise PydanticCustomError("params", "terms should name at least one term, each once")
        if {"occo", "ccl"} <= set(self.terms):
            raise PydanticCustomError("params", "terms: occo already holds omega6 x L_CCL (Eq. 20); drop ccl")
        return self

    @model_validator(mode="after")
    def _official_has_the_form(self) -> Loss:
        """compat=official computes the authors' code, which has these forms only."""
        if self.compat == "official" and any(
            getattr(self, key) not in forms for key, forms in OFFICIAL_LOSS_FORMS.items()
        ):
            raise PydanticCustomError(
                "params",
                "compat official computes the authors' code: should keep cx_variant bounded or mechrez and "
                "distance_form code (or set loss.compat: fixed)",
            )
        return self


class Ablation(Section):
    """Feature-space ablations (§4.4.1, Table 8)."""

    feature_space: FeatureSpace = param("occo", "occo or model1 ... model5 (model4: Eq. 21 replaces L_int and L_CCL)")


class Train(Section):
    """Stage `train`: the fusion network trained on masked pairs (docs/training.md)."""

    dataset: FolderName = param("FMB", "training dataset; masks from data/masks/<dataset>/<split>")
    split: FolderName = param("train", "training split")
    compat: SectionCompat = param(
        None,
        "fixed (our routine) or official (the authors' train_ep routine); null: the top-level compat",
        validate_default=True,
    )
    epochs: PositiveInt = param(30, "passes over the training pairs (the authors' README trains 30)")
    max_steps: PositiveInt | None = param(None, "cap on optimiser steps (smoke runs); null = all epochs")
    batch_size: PositiveInt = param(12, "crops per batch: 4 groups (the contrastive loss's layout)")
    crops_per_image: PositiveInt = param(2, "adjacent crops of one image in a group, as the public code")
    crop: Crop = param(256, "crop size in pixels (crops contain mask pixels), at least 16 (VGG19's four poolings)")
    flip: Flip = param("auto", "random horizontal flips: auto (true; false under compat official), true or false")
    lr: Positive = param(1.0e-4, "Adam learning rate")
    seed: Seed = param(0, "seed of the network, crops and loss sampling")
    precision: TrainPrecision = param(
        "auto", "auto (bf16 on CUDA, fp32 on CPU; fp32 under compat official), bf16 (autocast, CPU too) or fp32"
    )
    compile: Bool = param(False, "torch.compile the network")
    num_workers: NonNegativeInt = param(4, "data-loader workers")
    checkpoint_every: PositiveInt = param(500, "steps between resumable checkpoints (models/checkpoints/last.pt)")
    log_every: PositiveInt = param(10, "steps averaged per dvclive point")
    max_nonfinite: PositiveInt = param(20, "consecutive non-finite losses (skipped batches) before the run stops")
    vgg_weights: PathStr | None = param(None, "local vgg19-dcbb9e9d.pth; null = torchvision's cache or download")
    vgg_random_init: Bool = param(False, "random VGG19 (tests and offline smoke only; never for real training)")
    stage: TrainStage = param(
        "fusion", "fusion (rfn_nest: the RFN on train.autoencoder), both (auto-encoder, then RFN) or published"
    )
    autoencoder: PathStr | None = param(
        None, "rfn_nest: NestFuse auto-encoder (the authors' .model or .zip, or an occo checkpoint); null = registry"
    )
    rfn_weights: PathStr | None = param(
        None, "rfn_nest, stage published: the authors' RFN .model or .zip; null = registry"
    )
    autoencoder_epochs: PositiveInt = param(20, "rfn_nest, stage both: epochs of the auto-encoder stage")


# ----------------------------------------------------------------------------- fusion and evaluation


class Fuse(Section):
    """Stage `fuse`: full-resolution colour fusion of the listed splits."""

    compat: SectionCompat = param(
        None,
        "test routine: fixed (rounding) or official (the authors' test script); null: the top-level compat",
        validate_default=True,
    )
    checkpoint: PathStr = param("models/occo.pt", "weights to fuse with (ours or converted)")
    extra_checkpoints: dict[FolderName, PathStr] = param(
        {}, "{Method: checkpoint}: more fused methods under data/fused/<Method>/"
    )
    device: Device = param("auto", "auto (CUDA when available), cpu, cuda or cuda:N")
    batch_size: BatchSize = param("auto", "same-size pairs per forward: auto = 1 on CPU, 8 on CUDA")
    max_pixels: MaxPixels = param(MAX_PIXELS, "an image with more pixels is refused (read from its header)")
    memory_budget_gb: MemoryBudget = param(
        "auto", "working memory of one forward, auto = half of what the device has free; larger images go in tiles"
    )
    split_above: PositiveInt | None = param(
        None, "fuse images with a side over this in 4 parts overlapping by 5 px, as RFN-Nest's test (512); null = whole"
    )
    datasets: list[DatasetSplit] = param(
        ["FMB/test", "MSRS/train", "MSRS/test", "M3FD/test", "M3FD/detection", "TNO/test"],
        "<dataset>/<split> entries to fuse (absent ones are skipped)",
    )


class Evaluate(Section):
    """Stages `evaluate_reference` and `evaluate`: fusion metrics of every method (docs/metrics.md)."""

    variant: MetricVariant = param("matlab", "metric convention: matlab (Evaluation-for-Image-Fusion) or cddfuse")
    device: Device = param("auto", "auto (CUDA when available), cpu, cuda or cuda:N")
    batch_size: BatchSize = param("auto", "same-size pairs scored together: auto = 1 on CPU, 8 on CUDA")
    baselines: list[Baseline] = param(
        ["visible", "infrared", "mean", "max"], "pixel baselines scored beside the methods"
    )
    splits: dict[FolderName, FolderName] = param({}, "split evaluated per dataset (default test)")
    external: dict[FolderName, dict[FolderName, PathStr]] = param(
        {}, "more methods: {Method: {DATASET: path/to/fused/folder}}"
    )

    def split_of(self, dataset: str) -> str:
        """The split of ``dataset`` that is evaluated: its entry in ``splits``, else test."""
        return self.splits.get(dataset, "test")


# ----------------------------------------------------------------------------- downstream


class DetectDataset(Section):
    """How one dataset is read for detection."""

    train: FolderName = required("split the detectors train on")
    val: FolderName = required("split they are tested on (the same for every method)")
    labels: SubPath = required("label folder under data/raw/<dataset>/<split>/labels/")
    format: LabelFormat = required("label format: yolo or voc")
    classes: list[Text] = required("class list of the task (index = class id)")
    paper_classes: list[Text] = required("classes whose mean is the paper's 'all' column")
    source_classes: list[Text] | None = param(None, "names of the ids in YOLO source files (remapped to classes)")
    val_fraction: Real | None = param(
        None, "when train == val: share of ids held out for validation (seeded)", gt=0, lt=1
    )

    @model_validator(mode="after")
    def _consistent(self) -> DetectDataset:
        if not self.classes or not self.paper_classes:
            raise ValueError("classes and paper_classes should name at least one class")
        if unknown := [c for c in self.paper_classes if c not in self.classes]:
            raise ValueError(f"paper_classes {unknown} should be among classes {self.classes}")
        if self.format == "yolo" and not self.source_classes:
            raise ValueError("source_classes should name the class ids of the YOLO label files (format yolo)")
        if self.train == self.val and self.val_fraction is None:
            raise ValueError(f"train and val are both {self.train!r}: val_fraction should hold out a share in (0, 1)")
        return self


_DETECT_DATASETS = {
    "MSRS": DetectDataset(
        train="train",
        val="test",
        labels="det/fusion",
        format="yolo",
        source_classes=["person", "bicycle", "car"],
        classes=["person", "bicycle", "car"],
        paper_classes=["person", "car"],
    ),
    "M3FD": DetectDataset(
        train="detection",
        val="detection",
        val_fraction=0.2,
        labels="det_voc",
        format="voc",
        classes=["People", "Car", "Bus", "Lamp", "Motorcycle", "Truck"],
        paper_classes=["People", "Car", "Bus", "Lamp", "Motorcycle", "Truck"],
    ),
    "synthetic": DetectDataset(
        train="train",
        val="test",
        labels="det",
        format="yolo",
        source_classes=["person", "car"],
        classes=["person", "car"],
        paper_classes=["person", "car"],
    ),
}


class Detect(Section):
    """Stages `detect_reference` and `detect`: YOLOv5 trained on each method's images (docs/downstream.md)."""

    model: YoloModel = param("yolov5s", "ultralytics YOLOv5u size (anchor-free head)")
    weights: PathStr | None = param(None, "local COCO checkpoint; null = registry yolov5<size>u in models/pretrained")
    pretrained: Bool = param(True, "start from COCO weights; false = random init (smoke runs only)")
    epochs: PositiveInt = param(40, "training epochs per method")
    imgsz: PositiveInt = param(640, "training and test image size")
    batch: PositiveInt = param(16, "batch size")
    nbs: PositiveInt = param(64, "nominal batch: gradients accumulate over nbs/batch batches")
    warmup_epochs: NonNegative = param(3.0, "ultralytics warmup epochs (at least 100 iterations); 0 = none")
    workers: NonNegativeInt = param(8, "data-loader workers (ultralytics uses 0 on CPU)")
    device: Device = param("auto", "auto (CUDA when available), cpu, cuda or cuda:N")
    memory_budget_gb: MemoryBudget = param(
        "auto", "working memory of the validation, auto = half of what the device has free: a smaller batch"
    )
    amp: Amp = param("bf16", "bf16 (CUDA only) or none")
    seed: Seed = param(0, "seed of every detector")
    methods: list[FolderName] = param(["occo", "visible", "infrared"], "methods compared (+ published ones present)")
    run: list[FolderName] = param(["MSRS", "M3FD"], "datasets of `datasets` to train on (absent ones are skipped)")
    datasets: dict[FolderName, DetectDataset] = param(_DETECT_DATASETS, "per dataset: splits, labels, classes")

    @model_validator(mode="after")
    def _run_defined(self) -> Detect:
        if undefined := [name for name in self.run if name not in self.datasets]:
            raise ValueError(f"run names {undefined}, which datasets does not define")
        return self


class Segment(Section):
    """Stages `segment_reference` and `segment`: DeepLabV3+ trained on each method's images (docs/segmentation.md)."""

    dataset: FolderName = param("MSRS", "dataset with segmentation labels")
    train_split: FolderName = param("train", "split the segmenters train on")
    test_split: FolderName = param("test", "split they are tested on")
    methods: list[FolderName] = param(["occo", "visible", "infrared"], "methods compared (+ published ones present)")
    encoder: Encoder = param("resnet50", "DeepLabV3+ encoder")
    encoder_weights: Literal["imagenet"] | None = param("imagenet", "imagenet, or null for random init (smoke only)")
    weights: PathStr | None = param(None, "local encoder weights (.safetensors/.pth); null = registry copy")
    epochs: PositiveInt = param(150, "training epochs per method")
    batch_size: PositiveInt = param(8, "batch size")
    lr: Positive = param(0.01, "SGD learning rate (poly schedule)")
    momentum: Real = param(0.9, "SGD momentum", ge=0, lt=1)
    weight_decay: NonNegative = param(1.0e-4, "SGD weight decay")
    poly_power: NonNegative = param(0.9, "power of the poly schedule")
    crop: HeightWidth = param(None, "random training crop: null (whole image), int or [height, width]")
    size: HeightWidth = param(None, "resize images and labels first: null (native), int or [height, width]")
    flip: Bool = param(True, "random horizontal flips in training")
    num_workers: NonNegativeInt = param(4, "data-loader workers")
    device: Device = param("auto", "auto (CUDA when available), cpu, cuda or cuda:N")
    memory_budget_gb: MemoryBudget = param(
        "auto", "working memory of the test forward, auto = half of what the device has free: fewer images at once"
    )
    amp: Bool = param(True, "bf16 autocast on CUDA (fp16 with grad scaling where bf16 is unsupported); off on CPU")
    seed: Seed = param(0, "seed of every segmenter")

    @model_validator(mode="after")
    def _weights_need_encoder_weights(self) -> Segment:
        if self.weights is not None and self.encoder_weights is None:
            raise ValueError("weights is set but encoder_weights is null (random init): unset one")
        return self


# ----------------------------------------------------------------------------- report


class Gallery(Section):
    """Which pairs the report's gallery shows."""

    dataset: FolderName = param("TNO", "dataset of the gallery")
    split: FolderName = param("test", "split of the gallery")
    ids: list[Text | int] = param([], "pair ids; [] = the first n pairs")
    n: NonNegativeInt = param(4, "pairs shown when ids is empty")


class Report(Section):
    """Stage `report`: reports/report.md and the self-contained reports/report.html (docs/report.md)."""

    gallery: Gallery = param(Gallery(), "{dataset, split, ids, n} of the gallery")
    fusion_metrics: FusionMetrics = param("all", "all or a list of EN SF AG CC SD MI VIF Qabf SSIM SCD PSNR")
    compare_paper: Bool = param(True, "ours beside the paper's Tables 1-9, with ours - paper")
    ours: list[FolderName] = param(["occo"], "methods highlighted and compared with the paper's OCCO row")
    fig20_gallery: Gallery = param(
        Gallery(dataset="MSRS"), "{dataset, split, ids, n} of Fig. 20's gallery (the RFN-Nest runs, §4.5)"
    )
    fig20_datasets: list[FolderName] = param(["MSRS", "TNO"], "datasets of Fig. 20's metric tables")


# ----------------------------------------------------------------------------- the whole file


COMPAT_SECTIONS = ("arch", "loss", "train", "fuse")
"""Sections whose ``compat: null`` follows the top-level ``compat``."""


class Params(Section):
    """The whole params.yaml: the loss weights and ``compat`` at the top level (so `-S omega6=100` and
    `-S compat=official` address them), then a section per stage."""

    _following: frozenset[str] = PrivateAttr(frozenset())
    omega1: NonNegative = param(0.5, "shared-region contrastive ratio whose positive is visible (Eq. 7; Table 6)")
    omega2: NonNegative = param(
        0.5, "shared-region ratio whose positive is infrared (Eq. 7); unique and background weigh 1"
    )
    omega3: Fraction = param(0.5, "mixing of the cosine and L2 similarities in the contextual similarity (Eq. 12)")
    omega4: NonNegative = param(10.0, "pixel loss (Eq. 19): weight of the intensity term (Eq. 17)")
    omega5: NonNegative = param(1.0, "pixel loss (Eq. 19): weight of the texture (Sobel) term (Eq. 18)")
    omega6: NonNegative = param(
        10.0, "total loss: weight of the contrastive loss against the pixel loss (Eq. 20; Table 7)"
    )
    compat: Compat = param(
        "fixed", "fixed (our sound forms) or official (the authors' code: network, loss, training, test routine)"
    )
    alpha: NonNegative = param(700.0, "L_RFN: weight of the SSIM term against the feature term (Eq. 22)")
    beta: NonNegative = param(7000.0, "weight of L_CCL against L_RFN (Eq. 24; Fig. 20c): omega6 x alpha")
    download: Download = param(Download(), "stage download")
    evaluate: Evaluate = param(Evaluate(), "stages evaluate_reference and evaluate")
    masks: Masks = param(Masks(), "stage masks")
    arch: Arch = param(Arch(), "the fusion network")
    loss: Loss = param(Loss(), "forms of the contrastive loss")
    ablation: Ablation = param(Ablation(), "feature-space ablations")
    train: Train = param(Train(), "stage train")
    fuse: Fuse = param(Fuse(), "stage fuse")
    detect: Detect = param(Detect(), "stages detect_reference and detect")
    segment: Segment = param(Segment(), "stages segment_reference and segment")
    report: Report = param(Report(), "stage report")

    @model_validator(mode="after")
    def _unique_method_names(self) -> Params:
        """A method name names one set of images: the rows of metrics/fusion and the folders of data/fused are
        keyed by it, so an extra checkpoint or external folder may not take the name of occo, a baseline or
        another entry (published results under data/external are checked where they are imported)."""
        taken = dict.fromkeys(RESERVED_METHODS, "reserved (occo, or a pixel baseline of evaluate.baselines)")
        for param, names in (
            ("fuse.extra_checkpoints", self.fuse.extra_checkpoints),
            ("evaluate.external", self.evaluate.external),
        ):
            for name in names:
                if name in taken:
                    raise PydanticCustomError(
                        "params", f"{param}.{name}: the method name {name!r} is {taken[name]}; rename the entry"
                    )
                taken[name] = f"already a method of {param}"
        return self

    @model_validator(mode="wrap")
    @classmethod
    def _sections_follow_compat(cls, data: Any, handler: ModelWrapValidatorHandler[Params]) -> Params:
        """Every section of :data:`COMPAT_SECTIONS` whose ``compat`` is null or absent takes the top-level
        ``compat``; which ones did is kept (:attr:`following_compat`), so that an override of the top-level
        key moves them again."""
        if not isinstance(data, Mapping):
            return handler(data)
        top, raw, following = data.get("compat", "fixed"), dict(data), []
        for name in COMPAT_SECTIONS:
            section = raw.get(name, {})
            if isinstance(section, Mapping) and section.get("compat") is None:
                following.append(name)
                if top in get_args(Compat):  # a bad top-level value is reported by the handler
                    raw[name] = {**section, "compat": top}
        params = handler(raw)
        params._following = frozenset(following)
        return params

    @property
    def following_compat(self) -> frozenset[str]:
        """The sections whose ``compat`` is the top-level one (null or absent in the file)."""
        return self._following

    @model_validator(mode="after")
    def _network_fits(self) -> Params:
        """What ``loss`` and ``train`` ask of the network: L_RFN compares RFN-Nest's features, the two-stage and
        published runs are RFN-Nest's, and Eq. 23 has one weight per RFN-Nest scale."""
        rfn = self.arch.name == "rfn_nest"
        if "rfn" in self.loss.terms and not rfn:
            raise PydanticCustomError("params", "loss.terms rfn compares RFN-Nest's features: needs arch.name rfn_nest")
        if self.train.stage != "fusion" and not rfn:
            raise PydanticCustomError("params", f"train.stage {self.train.stage} needs arch.name rfn_nest")
        paths = [k for k in ("autoencoder", "rfn_weights") if getattr(self.train, k) is not None]
        if paths and not rfn:
            raise PydanticCustomError("params", f"train.{paths[0]} is read for arch.name rfn_nest only; set it null")
        if "ccl" in self.loss.terms and self.ablation.feature_space == "model4":
            raise PydanticCustomError("params", "loss.terms ccl: ablation.feature_space model4 has no contrastive loss")
        if len(self.loss.rfn_feature_weights) != len(self.arch.nest_widths):
            raise PydanticCustomError("params", "loss.rfn_feature_weights should have one weight per arch.nest_widths")
        return self
