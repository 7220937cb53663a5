"""Which of the paper's ablation studies (Tables 6–9) a run belongs to, judged by its params.

A run's *changes* are the params of the paper's configuration (``settings`` in studies.yaml: ω1..ω6,
``ablation.feature_space``, the ``arch`` switches, ``masks.prompt``) whose value in the run differs.
A run with no change is the paper's default and the reference row of every study (Table 6 "0.5:0.5",
Table 7 "10", Table 8 "OCCO", Table 9 the default prompt). A run whose changes all lie among one
study's params belongs to that study, on the row that sets exactly those changes, or on no printed
row (e.g. ω1:ω2 = 0.3:0.7). A run that changes params of two studies, or any other setting (ω3, ω4,
ω5), belongs to none.

A run's *variant* params are the other params that shape its scores (``runs.SETUP``: ``compat``,
``loss``, ``arch``, ``train``, ``masks``, ``fuse.compat``, ``evaluate.variant``) whose value differs from
the defaults (``Params()``, the paper's settings where it states them). A variant is never the paper's
row: it is placed in its study on no printed row, and the report names the params it differs in. A
seed or the split scored (``runs.REPLICATE``) does not make a variant.

Params are read as params.yaml spells them, nested mappings (``occo.config.as_dict`` of this run, the
YAML of an experiment read from git), so every run is compared in the same form.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from occo.config import Params, as_dict
from occo.report.paper.reference import PaperReference, PaperRow, PaperTable
from occo.report.paper.runs import REPLICATE, SETUP, flatten
from occo.report.render.document import yaml_scalar

MISSING = object()


def value_at(params: Mapping[str, object], dotted: str) -> object:
    """The value at a dotted path (``arch.cross_attention``) of params as params.yaml spells them;
    MISSING when absent."""
    node: object = params
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return MISSING
        node = node[part]
    return node


def same(a: object, b: object) -> bool:
    """Param equality with numbers compared as numbers (10 == 10.0) and booleans kept apart from them."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    return a == b


def changes(params: Mapping[str, object], settings: dict[str, object]) -> dict[str, object]:
    """The paper's settings this run changes, with the run's values (an absent param counts as unchanged)."""
    found = {}
    for key, default in settings.items():
        value = value_at(params, key)
        if value is not MISSING and not same(value, default):
            found[key] = value
    return found


def variant_params(params: Mapping[str, object], settings: Mapping[str, object]) -> dict[str, object]:
    """The setup params (``runs.SETUP``, without the studies' own and ``runs.REPLICATE``) in which a run
    differs from the defaults, with the run's values; a param the run does not give counts as the default."""
    defaults = flatten(as_dict(Params()))
    skip = (*settings, *REPLICATE)

    def counts(key: str) -> bool:
        return any(key == s or key.startswith(f"{s}.") for s in SETUP) and not any(
            key == k or key.startswith(f"{k}.") for k in skip
        )

    return {k: v for k, v in flatten(params).items() if counts(k) and not same(v, defaults.get(k, MISSING))}


@dataclass(frozen=True)
class Placement:
    """Where a run sits in one study: the table, the printed row it reproduces (None: no such row, or a
    variant), and the variant params that keep it off the paper's row."""

    table: PaperTable
    row: PaperRow | None
    variant: tuple[str, ...] = ()


def row_for(table: PaperTable, changed: dict[str, object], settings: dict[str, object]) -> PaperRow | None:
    """The row of ``table`` whose params amount to exactly ``changed`` (defaults dropped)."""
    for row in table.rows:
        wanted = {k: v for k, v in (row.params or {}).items() if not same(v, settings.get(k))}
        if wanted.keys() == changed.keys() and all(same(wanted[k], changed[k]) for k in wanted):
            return row
    return None


def classify(params: Mapping[str, object], paper: PaperReference) -> list[Placement]:
    """The studies a run with ``params`` belongs to: all four for the default configuration, one for
    a run that changes only that study's params, none otherwise; a variant (:func:`variant_params`) on no
    printed row."""
    changed = changes(params, paper.settings)
    variant = tuple(variant_params(params, paper.settings))
    placements = []
    for table in paper.studies():
        if changed and not set(changed) <= set(table.keys):
            continue
        row = None if variant else row_for(table, changed, paper.settings)
        placements.append(Placement(table, row, variant))
    return placements


def describe_changes(changed: dict[str, object]) -> str:
    """The changes as code spans, e.g. `omega6=100`, `arch.cross_attention=false` ("the paper's settings" if none)."""
    if not changed:
        return "the paper's settings"
    return ", ".join(f"`{k}={yaml_scalar(v)}`" for k, v in changed.items())
