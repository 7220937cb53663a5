"""The runs a study table compares: this workspace's run and the DVC experiments stored in git.

A sibling experiment is read from its commit (``git show <commit>:params.yaml`` and
``metrics/fusion/<dataset>.json``), only for experiments run from the same baseline commit as the
workspace's HEAD (what ``dvc exp show`` lists by default). Inside a queued ``dvc exp run`` the
temporary workspace holds no experiment refs, so only that run is shown; rebuilding the report in the
workspace afterwards brings in every finished experiment (docs/report.md).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from occo.config.load import ParamsError, Yaml12Loader, as_dict, validate_params
from occo.report.git import experiment_refs, file_at, revision

log = logging.getLogger(__name__)

# Params that decide how a run was trained and scored, beyond the study's own: runs differing here are
# flagged in a study table. Training's runtime knobs (workers, torch.compile, checkpoint and log
# frequency) are left out: they change no result, and dvc.yaml lists exactly these as the report's params.
TRAIN_SETUP = (
    "dataset",
    "split",
    "compat",
    "epochs",
    "max_steps",
    "batch_size",
    "crops_per_image",
    "crop",
    "flip",
    "lr",
    "seed",
    "precision",
    "vgg_random_init",
)
MASKS_SETUP = (
    "box_threshold",
    "text_threshold",
    "nms_iou",
    "max_boxes",
    "detector",
    "sam_model",
    "precision",
    "import",
    "init",
)
SETUP = (
    "compat",
    *(f"train.{k}" for k in TRAIN_SETUP),
    "loss",
    "arch",
    "ablation",
    *(f"masks.{k}" for k in MASKS_SETUP),
    "fuse.compat",
    "evaluate.variant",
    "evaluate.splits",
)
"""Every param that shapes a run's fusion scores (dvc.yaml lists them for the report stage). ``masks.prompt``
and the loss weights are the studies' own (paper.yaml ``settings``)."""
REPLICATE = ("train.seed", "evaluate.splits")
"""Setup params in which a run may differ from the paper's settings and still be the paper's configuration: a
seed (the paper gives none) and the split scored (the study captions say which)."""


@dataclass(frozen=True)
class Run:
    """One run: its name, its params as params.yaml spells them (nested mappings), and our method's
    fusion means on the study dataset (None: not scored)."""

    name: str
    params: Mapping[str, object]
    scores: dict[str, float | None] | None
    current: bool = False


@dataclass
class Siblings:
    """Experiments read from git, and notes on what could not be read."""

    runs: list[Run] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def flatten(params: object, prefix: str = "") -> dict[str, object]:
    """Nested params as ``{dotted.key: value}`` (lists and scalars are leaves)."""
    if not isinstance(params, Mapping):
        return {prefix: params} if prefix else {}
    out: dict[str, object] = {}
    for key, value in params.items():
        out |= flatten(value, f"{prefix}.{key}" if prefix else str(key))
    return out


def setup_differences(params: Mapping[str, object], reference: Mapping[str, object], ignore: set[str]) -> list[str]:
    """Dotted keys under :data:`SETUP` whose values differ between two runs (keys in ``ignore`` skipped)."""
    a, b = flatten(params), flatten(reference)
    keys = sorted(k for k in a.keys() | b.keys() if k.startswith(tuple(f"{s}." for s in SETUP)) or k in SETUP)
    return [k for k in keys if k not in ignore and a.get(k) != b.get(k)]


def resolved(params: dict) -> dict:
    """An experiment's params.yaml as this run's are shown (``as_dict`` of the validated file: a section's
    ``compat: null`` reads as the top-level ``compat`` it follows); the file as written when it does not
    validate under this code."""
    try:
        return as_dict(validate_params(params, "params.yaml"))
    except ParamsError:
        return params


def scores_of(doc: dict, method: str) -> dict[str, float | None] | None:
    """``doc[method]`` of a fusion metrics file when it is an object of numbers, else None."""
    entry = doc.get(method)
    if not isinstance(entry, dict):
        return None
    return {k: float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None for k, v in entry.items()}


def params_at(root: Path, commit: str) -> dict | None:
    """params.yaml at ``commit``, read as DVC reads it (YAML 1.2: ``1e-4`` is a number); None when it is absent or
    not a mapping."""
    text = file_at(root, commit, "params.yaml")
    try:
        params = yaml.load(text, Loader=Yaml12Loader) if text is not None else None
    except yaml.YAMLError:
        return None
    return params if isinstance(params, dict) else None


def sibling_runs(root: Path, dataset: str, method: str, *, exclude: str | None) -> Siblings:
    """The experiments of HEAD's baseline (``exclude``: the name of the run being reported)."""
    found = Siblings()
    head, refs = revision(root), experiment_refs(root)
    if head is None or refs is None:
        found.notes.append("no git repository here (or no git): other experiments cannot be read")
        return found
    refs = [r for r in refs if r.baseline == head and r.name != exclude]
    if not refs:
        found.notes.append(f"no other experiment of baseline {head[:7]} in this workspace's git refs")
    for ref in refs:
        params = params_at(root, ref.commit)
        if params is None:
            found.notes.append(f"experiment {ref.name}: params.yaml unreadable at {ref.commit[:7]}, skipped")
            log.warning("experiment %s: params.yaml unreadable at %s, skipped", ref.name, ref.commit[:7])
            continue
        metrics_text = file_at(root, ref.commit, f"metrics/fusion/{dataset}.json")
        try:
            doc = json.loads(metrics_text) if metrics_text is not None else {}
        except ValueError:
            doc = {}
            found.notes.append(f"experiment {ref.name}: metrics/fusion/{dataset}.json unreadable, no scores")
        found.runs.append(Run(ref.name, resolved(params), scores_of(doc, method) if isinstance(doc, dict) else None))
    return found
