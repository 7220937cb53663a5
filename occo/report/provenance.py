"""What the report is stamped with: the experiment's name, the git revision, and which models were
random-init (then a banner warns that the numbers say nothing about the method)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from occo.report.git import revision
from occo.report.paper.studies import param, show

EXP_NAME = "DVC_EXP_NAME"  # set by `dvc exp run` for every stage command (dvc.repo.experiments.queue.base)

# (param, value that means random init, what it initialises)
RANDOM_INIT = (
    ("masks.random_init", True, "Grounding DINO and SAM of the masks stage"),
    ("train.vgg_random_init", True, "the VGG19 of the contrastive loss"),
    ("detect.pretrained", False, "the YOLO detectors"),
    ("segment.encoder_weights", None, "the DeepLabV3+ encoders"),
)


@dataclass(frozen=True)
class Provenance:
    experiment: str | None
    revision: str | None
    random_init: list[str]


def random_init(params: dict) -> list[str]:
    """``param: value (what)`` for every model the params start from random weights."""
    found = []
    for key, value, what in RANDOM_INIT:
        if param(params, key) is value:  # every value is a singleton, never MISSING
            found.append(f"`{key}: {show(value)}` ({what})")
    return found


def provenance(root: Path, params: dict, env: Mapping[str, str]) -> Provenance:
    """The stamp of this run; name and revision are None outside an experiment / a git repository."""
    return Provenance(env.get(EXP_NAME) or None, revision(root), random_init(params))
