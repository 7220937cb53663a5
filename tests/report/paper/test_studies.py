"""Runs are placed in the paper's Tables 6-9 by how their params differ from the paper's settings."""

import copy

import pytest

from occo.report.paper.reference import load_paper
from occo.report.paper.studies import (
    MISSING,
    changes,
    classify,
    describe_changes,
    same,
    value_at,
    variant_params,
)

PAPER = load_paper()
DEFAULTS = {
    "omega1": 0.5,
    "omega2": 0.5,
    "omega3": 0.5,
    "omega4": 10,
    "omega5": 1,
    "omega6": 10,
    "ablation": {"feature_space": "occo"},
    "compat": "fixed",
    "arch": {"compat": "fixed", "spatial_enhancement": True, "cross_channel": True, "cross_attention": True},
    "masks": {"prompt": "The scene captures a group of pedestrians or cars.", "init": "pretrained"},
    "train": {"epochs": 30},
}


def with_(**overrides: object) -> dict:
    """DEFAULTS with dotted overrides (``arch__cross_attention=False`` sets arch.cross_attention)."""
    params = copy.deepcopy(DEFAULTS)
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split("__")
        node = params
        for p in parents:
            node = node[p]
        node[leaf] = value
    return params


def placed(params: dict) -> list[tuple[int, str | None]]:
    return [(p.table.table, p.row.row if p.row else None) for p in classify(params, PAPER)]


def test_paper_configuration_is_the_reference_row_of_every_study() -> None:
    assert placed(DEFAULTS) == [(6, "0.5:0.5"), (7, "10"), (8, "OCCO"), (9, "only_person_and_cars")]


def test_a_run_set_up_otherwise_is_a_variant_on_no_printed_row() -> None:
    """Training, masks, the authors' code, the metric convention: not the paper's settings, whatever the
    studies' params say; the run stays in its studies on no row and its variant params are named."""
    for overrides in (
        {"train__epochs": 1, "masks__init": "tiny"},
        {"compat": "official"},
        {"loss": {"compat": "official", "cx_variant": "bounded", "distance_form": "code"}},
        {"evaluate": {"variant": "cddfuse"}},
    ):
        params = with_(**overrides)
        assert placed(params) == [(6, None), (7, None), (8, None), (9, None)], overrides
    official = classify(with_(compat="official", omega6=100), PAPER)
    assert [(p.table.table, p.row, p.variant) for p in official] == [(7, None, ("compat",))]
    assert variant_params(with_(train__epochs=1, masks__init="tiny"), PAPER.settings) == {
        "train.epochs": 1,
        "masks.init": "tiny",
    }


def test_a_seed_or_the_split_scored_is_still_the_papers_configuration() -> None:
    assert placed(with_(train__seed=3, evaluate={"splits": {"FMB": "train"}})) == placed(DEFAULTS)


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"omega6": 100}, [(7, "100")]),
        ({"omega6": 0.1}, [(7, "0.1")]),
        ({"omega1": 0.8, "omega2": 0.2}, [(6, "0.8:0.2")]),
        ({"omega1": 1, "omega2": 0}, [(6, "1:0")]),
        ({"omega1": 0.3, "omega2": 0.7}, [(6, None)]),  # in the study, no printed row
        ({"omega1": 0.8}, [(6, None)]),  # 0.8:0.5 is not a row of Table 6
        ({"ablation__feature_space": "model3"}, [(8, "Model-3")]),
        ({"arch__cross_channel": False}, [(8, "w/o_CroC")]),
        ({"arch__spatial_enhancement": False}, [(8, "w/o_SE")]),
        ({"arch__cross_attention": False, "ablation__feature_space": "model1"}, [(8, None)]),
        (
            {"masks__prompt": "Precisely segmenting salient objects such as vehicles, pedestrians."},
            [(9, "all_salient_objects")],
        ),
        ({"masks__prompt": "The scene captures people."}, [(9, None)]),
        ({"omega6": 100, "omega1": 0.8, "omega2": 0.2}, []),  # two studies at once
        ({"omega3": 0.0}, []),  # a setting no study varies
    ],
)
def test_one_change_places_a_run_in_one_study(overrides: dict, expected: list) -> None:
    assert placed(with_(**overrides)) == expected


def test_absent_params_count_as_unchanged() -> None:
    assert changes({"omega6": 100}, PAPER.settings) == {"omega6": 100}
    assert placed({"omega6": 100}) == [(7, "100")]


def test_param_paths_and_equality() -> None:
    assert value_at(DEFAULTS, "arch.cross_attention") is True
    assert value_at(DEFAULTS, "arch.nothing") is MISSING and value_at(DEFAULTS, "omega1.x") is MISSING
    assert same(10, 10.0) and not same(True, 1) and not same(0, False) and same("a", "a")


def test_describe_changes() -> None:
    assert describe_changes({}) == "the paper's settings"
    changed = {"omega6": 100, "arch.cross_attention": False}
    assert describe_changes(changed) == "`omega6=100`, `arch.cross_attention=false`"
