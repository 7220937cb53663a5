"""What the report is stamped with: the experiment's name, the git revision, and which models were
random-init (then a banner warns that the numbers say nothing about the method)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path

from occo.config import Params
from occo.report.git import revision
from occo.report.render.document import yaml_scalar

EXP_NAME = "DVC_EXP_NAME"  # set by `dvc exp run` for every stage command (dvc.repo.experiments.queue.base)

# (param, whether its value means random init, what it initialises)
RANDOM_INIT = (
    ("masks.init", lambda v: v != "pretrained", "Grounding DINO and SAM of the masks stage"),
    ("train.vgg_random_init", lambda v: v is True, "the VGG19 of the contrastive loss"),
    ("detect.pretrained", lambda v: v is False, "the YOLO detectors"),
    ("segment.encoder_weights", lambda v: v is None, "the DeepLabV3+ encoders"),
)


@dataclass(frozen=True)
class Provenance:
    """The experiment's name (None outside ``dvc exp run``), the git revision (None outside a git
    repository) and one line per random-init model."""

    experiment: str | None
    revision: str | None
    random_init: list[str]


def random_init(cfg: Params) -> list[str]:
    """``param: value (what)`` for every model the params start from random weights."""
    return [
        f"`{key}: {yaml_scalar(attrgetter(key)(cfg))}` ({what})"
        for key, is_random, what in RANDOM_INIT
        if is_random(attrgetter(key)(cfg))
    ]


def provenance(root: Path, cfg: Params, env: Mapping[str, str]) -> Provenance:
    """The stamp of this run."""
    return Provenance(env.get(EXP_NAME) or None, revision(root), random_init(cfg))
