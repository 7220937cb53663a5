"""Logging-window means of loss terms: each term over the steps where it was present."""

from __future__ import annotations

import pytest
import torch

from occo.losses.term_means import TermMeans


def steps(*values: dict[str, float]) -> list[dict[str, torch.Tensor]]:
    return [{k: torch.tensor(v) for k, v in step.items()} for step in values]


def test_absent_term_is_averaged_over_its_own_steps_only():
    window = TermMeans()
    assert not window
    for step in steps({"total": 1.0, "shared_vi": 0.4}, {"total": 3.0}, {"total": 2.0, "shared_vi": 0.8}):
        window.add(step)
    assert window
    means = window.pop()
    assert means["total"] == pytest.approx(2.0)
    assert means["shared_vi"] == pytest.approx(0.6)  # a 0 for the step where it was skipped would give 0.4
    assert not window and window.pop() == {}


def test_term_absent_from_the_whole_window_is_not_reported():
    window = TermMeans()
    for step in steps({"total": 1.0, "unique_ir": 0.5}, {"total": 2.0}):
        window.add(step)
    assert set(window.pop()) == {"total", "unique_ir"}
    for step in steps({"total": 4.0}, {"total": 6.0}):
        window.add(step)
    assert window.pop() == {"total": pytest.approx(5.0)}  # nothing carried over from the last window


def test_values_are_detached_and_summed_in_float32():
    window = TermMeans()
    x = torch.tensor(2.0, requires_grad=True)
    window.add({"a": (x * 3).bfloat16()})
    window.add({"a": x * 5})
    window.add({"a": torch.tensor(1e-3, dtype=torch.bfloat16)})  # lost next to 16 in bf16, kept in float32
    means = window.pop()
    assert isinstance(means["a"], float) and means["a"] == pytest.approx((16 + 1e-3) / 3, rel=1e-5)
