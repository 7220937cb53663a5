"""occo.config.sections: params.yaml equals the models' defaults, docs/params.md their descriptions, and every
Literal the registry it copies."""

from __future__ import annotations

import importlib
from typing import get_args

import pytest
import yaml

from occo.config import Params, ParamsError, as_dict, load_params, table, types, validate_params
from support import REPO


def test_params_yaml_is_the_models_defaults():
    """When this fails, a default changed in one place only: occo/config/sections.py and params.yaml say the same."""
    assert load_params(REPO / "params.yaml") == Params()


def test_params_yaml_spells_out_every_key_of_the_models():
    """Every field appears in params.yaml (users read it), except optional keys of mapping entries."""
    written = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))

    def missing(model: dict, raw: dict, prefix: str = "") -> list[str]:
        out = []
        for key, value in model.items():
            if key not in raw:
                out.append(prefix + key)
            elif isinstance(value, dict) and isinstance(raw[key], dict) and not prefix.endswith(("datasets.",)):
                out += missing(value, raw[key], f"{prefix}{key}.")
        return out

    dumped = as_dict(Params())
    entry_keys = {"download.datasets", "detect.datasets", "masks.datasets", "evaluate.splits"}
    gaps = [k for k in missing(dumped, written) if not any(k.startswith(e + ".") for e in entry_keys)]
    assert not gaps, f"params.yaml lacks {gaps}"


def test_docs_params_md_is_generated_from_the_models():
    """When this fails, run `python -m occo.config.table` (make params-table)."""
    assert (REPO / table.DOC).read_text(encoding="utf-8") == table.markdown()


def test_every_field_has_a_one_line_description():
    for _, _, rows in table.sections():
        for key, _, description in rows:
            assert description and "\n" not in description, key


@pytest.mark.parametrize(
    ("literal", "module", "registry"),
    [
        (types.FeatureSpace, "occo.losses.contrastive", "FEATURE_SPACES"),
        (types.DistanceForm, "occo.losses.contrastive", "DISTANCE_FORMS"),
        (types.CxVariant, "occo.losses.contextual", "CX_VARIANTS"),
        (types.Compat, "occo.losses.objective", "OBJECTIVES"),
        (types.Compat, "occo.losses.pixel", "SSIM_FORMS"),
        (types.Compat, "occo.train.routine", "ROUTINES"),
        (types.SpatialGate, "occo.nn.fifn.blocks", "GATES"),
        (types.TokenNorm, "occo.nn.fifn.blocks", "TOKEN_NORMS"),
        (types.AttentionRouting, "occo.nn.fifn.blocks", "ATTENTION_ROUTINGS"),
        (types.MetricVariant, "occo.metrics.suite", "VARIANTS"),
        (types.Metric, "occo.metrics.suite", "METRICS"),
        (types.Baseline, "occo.metrics.evaluate", "BASELINES"),
        (types.Detector, "occo.masks.models", "DETECTORS"),
        (types.SamModel, "occo.masks.sam", "SAM_MODELS"),
        (types.ModelInit, "occo.masks.models", "MODEL_INITS"),
        (types.LabelFormat, "occo.downstream.labels", "FORMATS"),
        (types.Encoder, "occo.fetch.weights", "ENCODER_WEIGHTS"),
        (types.NetworkName, "occo.nn.networks", "NETWORKS"),
        (types.LossTermName, "occo.losses.total", "LOSS_TERMS"),
        (types.RfnForm, "occo.losses.rfn", "RFN_FORMS"),
        (types.TrainStage, "occo.train.stages", "TRAIN_STAGES"),
    ],
)
def test_enums_match_the_registries_they_copy(literal, module, registry):
    assert list(get_args(literal)) == list(getattr(importlib.import_module(module), registry))


def test_vgg_loss_terms_are_the_terms_that_load_vgg():
    from occo.losses.total import LOSS_TERMS

    assert {name for name, term in LOSS_TERMS.items() if term.vgg} == types.VGG_LOSS_TERMS


def test_each_network_owns_its_arch_fields():
    """Every arch field but ``name`` and ``compat`` (every network's) belongs to one network, which alone may
    change it."""
    from occo.config.sections import NETWORK_FIELDS, Arch

    owned = [f for fields in NETWORK_FIELDS.values() for f in fields]
    assert sorted(owned) == sorted(set(Arch.model_fields) - {"name", "compat"}) and len(owned) == len(set(owned))
    assert NETWORK_FIELDS.keys() == set(get_args(types.NetworkName))


def test_enums_made_from_registries():
    from occo.downstream.detect import MODEL_SIZES
    from occo.masks.models import PRECISIONS
    from occo.nn.fifn.blocks import SPATIAL_ENHANCEMENTS
    from occo.nn.fifn.model import INFERENCE_RULES

    assert set(get_args(types.Compat)) == SPATIAL_ENHANCEMENTS.keys() & INFERENCE_RULES.keys()
    assert list(get_args(types.Precision)) == ["auto", *PRECISIONS]
    from occo.train.routine import AUTOCAST_DTYPES

    assert list(get_args(types.TrainPrecision)) == ["auto", *AUTOCAST_DTYPES]
    assert list(get_args(types.YoloModel)) == [f"yolov5{size}" for size in MODEL_SIZES]


def test_sections_are_frozen():
    cfg = Params()
    with pytest.raises(ValueError, match="frozen"):
        cfg.train.epochs = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"loss": {"terms": ["rfn"]}}, "loss.terms rfn compares RFN-Nest's features: needs arch.name rfn_nest"),
        (
            {"arch": {"name": "rfn_nest", "cross_channel": False}},
            "cross_channel should keep the default: fifn settings",
        ),
        (
            {"arch": {"nest_widths": [8, 8, 8, 8]}},
            "nest_widths should keep the default: rfn_nest settings, and name is fifn",
        ),
        ({"arch": {"name": "rfn_nest", "nest_widths": [8, 8, 8]}}, "nest_widths should have 4 entries"),
        ({"loss": {"terms": ["occo", "ccl"]}}, "occo already holds omega6 x L_CCL (Eq. 20); drop ccl"),
        ({"loss": {"terms": []}}, "terms should name at least one term, each once"),
        ({"train": {"stage": "both"}}, "train.stage both needs arch.name rfn_nest"),
        ({"train": {"autoencoder": "nestfuse.zip"}}, "train.autoencoder is read for arch.name rfn_nest only"),
        (
            {"arch": {"name": "rfn_nest"}, "loss": {"terms": ["rfn", "ccl"]}, "ablation": {"feature_space": "model4"}},
            "ablation.feature_space model4 has no contrastive loss",
        ),
        ({"arch": {"name": "rfn_nest"}, "loss": {"rfn_feature_weights": [1, 2]}}, "one weight per arch.nest_widths"),
    ],
)
def test_network_loss_and_stage_params_are_checked_together(raw, problem):
    with pytest.raises(ParamsError) as err:
        validate_params(raw)
    assert problem in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_the_fig20_settings_are_valid():
    cfg = validate_params({"arch": {"name": "rfn_nest"}, "loss": {"terms": ["rfn", "ccl"]}, "train": {"stage": "both"}})
    assert cfg.beta == 7000 and cfg.alpha == 700 and cfg.arch.nest_widths == [64, 112, 160, 208]
