"""What a training run trains, step by step (``train.stage``; RFN-Nest trains in two stages).

    fusion     every step trains the fusion network with ``loss.terms``: FIFN whole; RFN-Nest its RFN, with the
               encoder and decoder of ``train.autoencoder`` (the authors' published NestFuse auto-encoder by
               default) frozen, out of the optimiser
    both       RFN-Nest: the first ``train.autoencoder_epochs`` epochs train the encoder and decoder (from random
               init) to reconstruct the training crops, infrared and visible alike, with the auto-encoder loss
               (occo.losses.rfn); the remaining steps train the RFN as ``fusion`` does, on that auto-encoder
    published  RFN-Nest: no step at all: the authors' published auto-encoder and RFN are the run's weights

A run's steps are numbered once across its stages: steps ``0 .. autoencoder_steps - 1`` train the auto-encoder,
the rest the fusion network, so a resumed run knows its stage from its step. ``train.max_steps`` caps the
fusion stage only: the auto-encoder stage always runs its ``autoencoder_epochs``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from dvclive import Live
from torch import nn

from occo.config import Params
from occo.fetch.weights import RFN_NEST_AUTOENCODER, RFN_NEST_RFN, resolve_weights
from occo.nn.networks import network
from occo.nn.rfn_nest.published import autoencoder_state, convert_rfn_nest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainStage:
    """``autoencoder``: the run trains RFN-Nest's auto-encoder first; ``steps``: the run trains at all."""

    autoencoder: bool
    steps: bool


TRAIN_STAGES: dict[str, TrainStage] = {
    "fusion": TrainStage(autoencoder=False, steps=True),
    "both": TrainStage(autoencoder=True, steps=True),
    "published": TrainStage(autoencoder=False, steps=False),
}
"""``train.stage`` -> what it trains (occo.config.types.TrainStage copies the keys)."""


def autoencoder_steps(cfg: Params, batches_per_epoch: int, world_size: int) -> int:
    """Steps of the auto-encoder stage: ``train.autoencoder_epochs`` passes over the data (0 unless ``both``)."""
    if not TRAIN_STAGES[cfg.train.stage].autoencoder:
        return 0
    return max(1, cfg.train.autoencoder_epochs * batches_per_epoch // world_size)


def starting_autoencoder(cfg: Params, root: Path) -> Path | None:
    """The auto-encoder file the fusion stage starts from (``train.autoencoder``, else the registry copy), or None
    where the run trains its own (``both``) or the network has none (FIFN)."""
    if cfg.arch.name != "rfn_nest" or cfg.train.stage != "fusion":
        return None
    return resolve_weights(RFN_NEST_AUTOENCODER, cfg.train.autoencoder, param="train.autoencoder", root=root)


def load_autoencoder(model: nn.Module, path: Path) -> None:
    """Put the encoder and decoder weights of ``path`` into the RFN-Nest ``model`` (its RFN keeps its init)."""
    missing, unexpected = model.load_state_dict(autoencoder_state(path, model.arch), strict=False)
    if unexpected or any(not k.startswith("rfn.") for k in missing):
        raise ValueError(f"{path}: auto-encoder weights do not fit the network ({missing}, {unexpected})")
    log.info("auto-encoder weights from %s (frozen while the RFN trains)", path)


def autoencoder_parameters(model: nn.Module) -> list[nn.Parameter]:
    """What the auto-encoder stage trains: everything but the fusion stage's parameters."""
    fused = {id(p) for p in network(model.arch).trained(model)}
    return [p for p in model.parameters() if id(p) not in fused]


def fusion_parameters(model: nn.Module) -> list[nn.Parameter]:
    """What the fusion stage trains (all of FIFN, RFN-Nest's RFN); every other parameter is frozen
    (``requires_grad`` off), so no gradient is computed for it and data parallelism ignores it."""
    trained = list(network(model.arch).trained(model))
    keep = {id(p) for p in trained}
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)
    return trained


def write_published(cfg: Params, root: Path, *, final: Path, checkpoints: Path, live_dir: Path) -> Path:
    """``train.stage: published``: the authors' auto-encoder and RFN (``train.autoencoder``, ``train.rfn_weights``,
    else the registry copies) converted into ``final``; the checkpoint folder and an empty training log exist,
    as the stage's outputs."""
    autoencoder = resolve_weights(RFN_NEST_AUTOENCODER, cfg.train.autoencoder, param="train.autoencoder", root=root)
    rfn = resolve_weights(RFN_NEST_RFN, cfg.train.rfn_weights, param="train.rfn_weights", root=root)
    convert_rfn_nest(autoencoder, rfn, final)
    checkpoints.mkdir(parents=True, exist_ok=True)
    with Live(dir=str(live_dir), resume=False, save_dvc_exp=False, dvcyaml=False):
        pass  # a fresh, empty training log: nothing was trained
    log.info("train.stage published: %s holds the authors' weights (%s, %s); nothing trained", final, autoencoder, rfn)
    return final
