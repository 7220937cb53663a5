"""Frozen VGG19 feature extractor: torchvision's ``vgg19`` features, truncated at the deepest tapped layer.

The contextual terms use the 3-channel network on ImageNet-normalised input (the public code's
``ContextualBilateralLoss(use_vgg=True)``); the background term uses a 1-channel network whose first
convolution folds the RGB weights with the grey coefficients 0.299/0.587/0.114, on raw [0, 1] input
(the public code's ``Vgg19``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import nn
from torchvision.models.vgg import cfgs, make_layers

from occo.data.color import IMAGENET_MEAN, IMAGENET_STD
from occo.data.io import read_checkpoint
from occo.fetch.download import removing_created_folders
from occo.fetch.registry import load_registry
from occo.fetch.weights import WeightsUnavailableError, random_init_hint, torch_hub_file

log = logging.getLogger(__name__)

GREY_COEFFICIENTS = (0.299, 0.587, 0.114)
WEIGHTS_PARAM = "train.vgg_weights"
RANDOM_INIT_PARAM = "train.vgg_random_init"


def _module_names(cfg: Iterable[int | str]) -> list[str]:
    """Names of the modules of ``make_layers(cfg)``: conv1_1, relu1_1, ..., pool1, conv2_1, ..."""
    names: list[str] = []
    block, conv = 1, 1
    for v in cfg:
        if v == "M":
            names.append(f"pool{block}")
            block, conv = block + 1, 1
        else:
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
            conv += 1
    return names


MODULE_NAMES: tuple[str, ...] = tuple(_module_names(cfgs["E"]))
"""The 37 modules of torchvision's ``vgg19().features`` (index = position in the Sequential)."""
RELU_LAYERS: tuple[str, ...] = tuple(n for n in MODULE_NAMES if n.startswith("relu"))
"""Tappable layers, relu1_1 ... relu5_4 (the network never goes past relu5_4)."""


def _weights_entry() -> dict:
    return load_registry()["weights"]["vgg19"]


def _how_to_provide(entry: dict) -> str:
    return (
        f"download {entry['url']} ({entry['filename']}) where there is internet and set {WEIGHTS_PARAM}: "
        f"/path/to/{entry['filename']} in params.yaml (or put it in {torch.hub.get_dir()}/checkpoints/)"
        f"{random_init_hint(WEIGHTS_PARAM)}"
    )


def load_vgg19_state_dict(weights: str | Path | None) -> dict[str, torch.Tensor]:
    """torchvision's ImageNet VGG19 state dict, from a local file or the torch hub cache/URL (hash-checked).

    Raises WeightsUnavailableError naming the file ``vgg19-dcbb9e9d.pth``, its URL and the param
    ``train.vgg_weights`` when the local file is missing or unreadable, or the download fails.
    """
    entry = _weights_entry()
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise WeightsUnavailableError(f"VGG19 weights {path} ({WEIGHTS_PARAM}) not found: {_how_to_provide(entry)}")
        try:  # weights_only: a pickle that would run code is refused, in one line
            return read_checkpoint(path, remedy=_how_to_provide(entry))
        except (OSError, ValueError) as exc:
            raise WeightsUnavailableError(" ".join(str(exc).split())) from exc
    try:
        with removing_created_folders(torch_hub_file(entry["filename"]).parent):
            return torch.hub.load_state_dict_from_url(
                entry["url"], map_location="cpu", progress=False, check_hash=True, file_name=entry["filename"]
            )
    except (OSError, RuntimeError) as exc:  # URLError is an OSError; a hash mismatch is a RuntimeError
        raise WeightsUnavailableError(
            f"VGG19 weights {entry['filename']} are not in the torch hub cache and could not be downloaded "
            f"({' '.join(str(exc).split())}): {_how_to_provide(entry)}"
        ) from exc


def _init_like_torchvision(body: nn.Sequential) -> None:
    """torchvision's VGG initialisation of the convolutions (Kaiming normal, fan-out; zero bias)."""
    for m in body.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)


def _features_subset(state: Mapping[str, torch.Tensor], n_modules: int) -> dict[str, torch.Tensor]:
    """``features.<i>.*`` entries with i < n_modules, keys without the ``features.`` prefix."""
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if len(parts) == 3 and parts[0] == "features" and int(parts[1]) < n_modules:
            out[f"{parts[1]}.{parts[2]}"] = value
    return out


def fold_to_grey(conv: nn.Conv2d) -> nn.Conv2d:
    """A 1-channel copy of an RGB convolution: ``w_grey = 0.299 w_R + 0.587 w_G + 0.114 w_B``, same bias."""
    coeffs = torch.tensor(GREY_COEFFICIENTS, dtype=conv.weight.dtype, device=conv.weight.device)
    grey = nn.Conv2d(1, conv.out_channels, conv.kernel_size, conv.stride, conv.padding)
    with torch.no_grad():
        grey.weight.copy_((conv.weight * coeffs[None, :, None, None]).sum(dim=1, keepdim=True))
        grey.bias.copy_(conv.bias)
    return grey


class VGG19Features(nn.Module):
    """Frozen VGG19 returning ``{layer: features}`` for the requested ReLU layers.

    Args:
        weights: local ``vgg19-dcbb9e9d.pth`` (param ``train.vgg_weights``), or None for the torch hub
            cache / download (offline without a cached copy: WeightsUnavailableError).
        random_init: torchvision's random initialisation instead of ImageNet weights (param
            ``train.vgg_random_init``; tests and smoke runs; ``OCCOLoss.from_config`` warns, once per loss).
        in_channels: 3 — grey input is repeated to RGB and ImageNet-normalised; 1 — first layer folded
            to grey, raw input (the public code's background network).
        layers: ReLU layers to return; the network is cut after the deepest one (at most relu5_4).

    Input (B, 1 or in_channels, H, W) in [0, 1]. Always in eval mode with ``requires_grad=False``.
    """

    def __init__(
        self,
        weights: str | Path | None = None,
        *,
        random_init: bool = False,
        in_channels: int = 3,
        layers: Iterable[str] = ("relu4_4", "relu5_4"),
    ) -> None:
        super().__init__()
        layers = tuple(layers)
        unknown = [name for name in layers if name not in RELU_LAYERS]
        if unknown or not layers:
            raise ValueError(f"unknown VGG19 layers {unknown or '(none)'}; choose from {', '.join(RELU_LAYERS)}")
        if in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {in_channels}")
        if random_init and weights is not None:
            raise ValueError(f"give either {WEIGHTS_PARAM} or {RANDOM_INIT_PARAM}: true, not both")
        taps = {MODULE_NAMES.index(name): name for name in layers}
        n_modules = max(taps) + 1
        body = make_layers(cfgs["E"])[:n_modules]
        if random_init:
            _init_like_torchvision(body)
        else:
            subset = _features_subset(load_vgg19_state_dict(weights), n_modules)
            try:
                body.load_state_dict(subset)
            except RuntimeError as exc:
                raise WeightsUnavailableError(
                    f"{weights or 'the cached VGG19 file'} is not a torchvision VGG19 state dict: "
                    f"{' '.join(str(exc).split())[:300]}"
                ) from exc
        if in_channels == 1:
            body[0] = fold_to_grey(body[0])
        self.body = body
        self.in_channels = in_channels
        self.layers = layers
        self._taps = taps
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGG19Features:
        """Stays in eval mode whatever the parent module does."""
        return super().train(False)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.shape[1] not in (1, self.in_channels):
            raise ValueError(f"VGG19Features(in_channels={self.in_channels}) got {x.shape[1]} channels")
        if self.in_channels == 3:
            x = (x.expand(-1, 3, -1, -1) - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        out: dict[str, torch.Tensor] = {}
        for i, module in enumerate(self.body):
            x = module(x)
            if i in self._taps:
                out[self._taps[i]] = x
        return out
