"""Memory budgets: batches sized from a measured per-item cost, halved on out-of-memory; peak usage."""

from __future__ import annotations

import contextlib
import logging

import pytest
import torch

from occo.data import DataError
from occo.pipeline import memory
from occo.pipeline.memory import GIB, BoundedBatches, Measured, fitting, peak_usage, retry_halving

CPU = torch.device("cpu")


def fake_probe(per_item: int):
    """A measure_peak that reports ``per_item`` bytes for each item of the batch the work received."""
    sizes: list[int] = []

    @contextlib.contextmanager
    def measure_peak(device):
        measured = Measured()
        yield measured
        measured.bytes = per_item * sizes[-1]

    return measure_peak, sizes


def test_fitting_is_what_the_budget_holds_between_one_and_the_limit():
    assert fitting(10 * GIB, 2 * GIB, 8) == 5
    assert fitting(10 * GIB, 0.5 * GIB, 8) == 8
    assert fitting(GIB, 3 * GIB, 8) == 1
    assert fitting(GIB, 0, 8) == 8  # cost unknown: the configured batch


def test_the_first_item_is_measured_alone_then_the_batch_fits_the_budget(monkeypatch, caplog):
    probe, sizes = fake_probe(3 * GIB)
    monkeypatch.setattr(memory, "measure_peak", probe)
    batches = BoundedBatches(limit=8, budget=10 * GIB, device=CPU, what="masks", unit="pair")

    def work(batch):
        sizes.append(len(batch))
        return [x * 10 for x in batch]

    with caplog.at_level(logging.INFO, logger="occo.pipeline.memory"):
        out = list(batches.run(list(range(11)), work))
    assert [len(b) for b, _ in out] == [1, 3, 3, 3, 1]
    assert [y for _, r in out for y in r] == [x * 10 for x in range(11)]
    assert "one pair needs about 3.00 GB" in caplog.text and "3 pairs per batch (at most 8)" in caplog.text


def test_a_budget_for_one_item_says_one_pair_per_batch(monkeypatch, caplog):
    probe, sizes = fake_probe(3 * GIB)
    monkeypatch.setattr(memory, "measure_peak", probe)
    batches = BoundedBatches(limit=8, budget=4 * GIB, device=CPU, what="masks", unit="pair")
    with caplog.at_level(logging.INFO, logger="occo.pipeline.memory"):
        out = list(batches.run(list(range(3)), lambda batch: sizes.append(len(batch)) or batch))
    assert [len(b) for b, _ in out] == [1, 1, 1]
    assert "budget 4.00 GB: 1 pair per batch (at most 8)" in caplog.text


def test_out_of_memory_halves_the_batch_and_retries_the_same_items(caplog):
    seen: list[list[int]] = []

    def work(batch):
        seen.append(batch)
        if len(batch) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return sum(batch)

    batches = BoundedBatches(limit=8, budget=1 << 60, device=CPU, what="masks", unit="pair")
    with caplog.at_level(logging.WARNING, logger="occo.pipeline.memory"):
        out = list(batches.run(list(range(9)), work))
    assert [b for b, _ in out] == [[0], [1, 2], [3, 4], [5, 6], [7, 8]]
    assert seen[1:4] == [[1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 3, 4], [1, 2]]  # the same items, half as many each time
    assert "out of memory with 8 pairs on cpu; retrying them 4 at a time" in caplog.text
    assert batches.size == 2


def test_one_item_that_does_not_fit_is_a_one_line_error():
    def work(batch):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")

    with pytest.raises(DataError, match="masks: one pair does not fit in the memory of cpu .*80.00 GiB"):
        list(BoundedBatches(8, GIB, CPU, what="masks", unit="pair").run([1, 2], work))


def test_retry_halving_lowers_the_batch_until_it_fits(caplog):
    tried: list[int] = []

    def run(batch):
        tried.append(batch)
        if batch > 3:
            raise MemoryError
        return batch

    with caplog.at_level(logging.WARNING, logger="occo.pipeline.memory"):
        assert retry_halving(run, 16, what="validation", device=CPU) == 2
    assert tried == [16, 8, 4, 2] and "retrying at batch 8" in caplog.text
    with pytest.raises(DataError, match="a batch of one does not fit"):
        retry_halving(lambda b: (_ for _ in ()).throw(MemoryError()), 1, what="validation", device=CPU)


def test_measured_cost_and_peak_usage_on_the_host():
    with memory.measure_peak(CPU) as measured:
        block = bytearray(256 << 20)  # 256 MiB, touched
        block[::4096] = b"x" * len(block[::4096])
    assert measured.bytes >= 200 << 20
    usage = peak_usage()
    assert usage.rss >= 256 << 20 and usage.cuda == 0
    assert str(usage) == f"peak RSS {usage.rss / GIB:.2f} GB, CUDA 0.00 GB"
