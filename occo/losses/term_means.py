"""Means of the loss terms over a logging window, each over the steps where the term was present.

A contrastive term whose region is empty in every anchor is absent from that step's terms (not 0):
averaging it as 0 would log a value the loss never took. ``TermMeans`` keeps one running sum and one
count per term on the terms' device, and turns them into floats with one host transfer per window.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch


class TermMeans:
    """``add`` one step's ``{term: scalar tensor}``; ``pop`` the window's means and start a new one.

    A term present in k of the window's steps is averaged over those k; a term present in none is
    not in ``pop``'s result. ``bool(window)`` is True once a step has been added.
    """

    def __init__(self) -> None:
        self._sums: dict[str, torch.Tensor] = {}
        self._counts: dict[str, int] = {}

    def add(self, terms: Mapping[str, torch.Tensor]) -> None:
        for name, value in terms.items():
            value = value.detach().float()
            self._sums[name] = self._sums[name] + value if name in self._sums else value
            self._counts[name] = self._counts.get(name, 0) + 1

    def __bool__(self) -> bool:
        return bool(self._counts)

    def pop(self) -> dict[str, float]:
        """``{term: mean over the steps where it was present}`` of this window, then an empty window."""
        names = list(self._sums)
        means = torch.stack([self._sums[n] / self._counts[n] for n in names]).tolist() if names else []
        self._sums, self._counts = {}, {}
        return dict(zip(names, means))
