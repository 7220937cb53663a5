"""params.yaml as typed, frozen models: one class per section, each field with its default and one line of doc.

These classes are the single home of every default: params.yaml repeats them (a test keeps the two
equal) and docs/params.md is generated from the descriptions (``python -m occo.config.table``). A
stage receives its section as one of these objects; the library reads attributes, never a dict.
Adding a param is one field here, its line in params.yaml, and `make params-table`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from occo.config.types import (
    MAX_PIXELS,
    Amp,
    AttentionRouting,
    Baseline,
    BatchSize,
    Bool,
    Compat,
    CxVariant,
    DatasetSplit,
    Detector,
    Device,
    DistanceForm,
    Encoder,
    FeatureSpace,
    FolderName,
    Fraction,
    FusionMetrics,
    HeightWidth,
    LabelFormat,
    MaxPixels,
    MemoryBudget,
    MetricVariant,
    ModelInit,
    NonNegative,
    NonNegativeInt,
    PathStr,
    Positive,
    PositiveInt,
    Precision,
    Real,
    SamModel,
    ScaleInts,
    Seed,
    SpatialGate,
    Text,
    TokenNorm,
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


class Arch(Section):
    """The fusion network (§3.1); a checkpoint records its own and fusion follows it."""

    compat: Compat = param("fixed", "fixed (bugs of the public code fixed) or official (reproduces its checkpoint)")
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

    @model_validator(mode="after")
    def _buildable(self) -> Arch:
        """One head count per width, each width divisible by its heads; compat=official runs the public code's
        forms (sigmoid gate, layer norm, code routing)."""
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


class Loss(Section):
    """Forms of the contextual contrastive loss (docs/fidelity.md)."""

    cx_variant: CxVariant = param("bounded", "contextual similarity: bounded, literal (Eq. 9-12) or mechrez")
    distance_form: DistanceForm = param(
        "code", "Eq. 13-14: code (a ratio per VGG layer, relu4_4 x0.25) or paper (one ratio of the layer sum)"
    )


class Ablation(Section):
    """Feature-space ablations (§4.4.1, Table 8)."""

    feature_space: FeatureSpace = param("occo", "occo or model1 ... model5 (model4: Eq. 21 replaces L_int and L_CCL)")


class Train(Section):
    """Stage `train`: the fusion network trained on masked pairs (docs/training.md)."""

    dataset: FolderName = param("FMB", "training dataset; masks from data/masks/<dataset>/<split>")
    split: FolderName = param("train", "training split")
    epochs: PositiveInt = param(20, "passes over the training pairs")
    max_steps: PositiveInt | None = param(None, "cap on optimiser steps (smoke runs); null = all epochs")
    batch_size: PositiveInt = param(12, "crops per batch: 4 groups (the contrastive loss's layout)")
    crops_per_image: PositiveInt = param(2, "adjacent crops of one image in a group, as the public code")
    crop: PositiveInt = param(256, "crop size in pixels (crops contain mask pixels)")
    flip: Bool = param(True, "random horizontal flips (the public code has none)")
    lr: Positive = param(1.0e-4, "Adam learning rate")
    seed: Seed = param(0, "seed of the network, crops and loss sampling")
    amp: Amp = param("bf16", "bf16 (autocast on CUDA) or none (fp32)")
    compile: Bool = param(False, "torch.compile the network")
    num_workers: NonNegativeInt = param(4, "data-loader workers")
    checkpoint_every: PositiveInt = param(500, "steps between resumable checkpoints (models/checkpoints/last.pt)")
    log_every: PositiveInt = param(10, "steps averaged per dvclive point")
    max_nonfinite: PositiveInt = param(20, "consecutive non-finite losses (skipped batches) before the run stops")
    vgg_weights: PathStr | None = param(None, "local vgg19-dcbb9e9d.pth; null = torchvision's cache or download")
    vgg_random_init: Bool = param(False, "random VGG19 (tests and offline smoke only; never for real training)")


# ----------------------------------------------------------------------------- fusion and evaluation


class Fuse(Section):
    """Stage `fuse`: full-resolution colour fusion of the listed splits."""

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
    labels: PathStr = required("label folder under data/raw/<dataset>/<split>/labels/")
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


# ----------------------------------------------------------------------------- the whole file


class Params(Section):
    """The whole params.yaml: the loss weights at the top level (so `-S omega6=100` addresses them), then a
    section per stage."""

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
