"""The NaN/inf guard every loss applies to its terms before anything is backpropagated."""

from __future__ import annotations

from collections.abc import Mapping

import torch


class NonFiniteLossError(FloatingPointError):
    """An input or a loss term holds NaN or ±inf; the message names which."""


def non_finite(named: Mapping[str, torch.Tensor]) -> list[str]:
    """Names whose tensor holds NaN/inf, with a single device-to-host transfer."""
    flags = torch.stack([torch.isfinite(t).all() for t in named.values()]).cpu().tolist()
    return [name for name, ok in zip(named, flags) if not ok]
