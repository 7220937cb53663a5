"""Memory: a stage's working-memory budget, batches sized from it and halved on out-of-memory, peak usage.

A stage that batches work on a device gets a budget in bytes (:func:`memory_budget`): ``auto`` = half of
what the device has free when the stage starts, or a number of GB (``<section>.memory_budget_gb``).
:class:`BoundedBatches` measures what one item costs on the first item, alone (:func:`measure_peak`),
then batches as many items as the budget holds, at most the configured batch size; an out-of-memory
error halves the batch and retries the same items, logged. :func:`peak_usage` is what a whole stage
process used at its peak (``occo.pipeline.entry`` logs it when a stage ends).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import resource
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch

from occo.data.io import DataError

log = logging.getLogger(__name__)

GIB = 1 << 30
OUT_OF_MEMORY: tuple[type[BaseException], ...] = (torch.OutOfMemoryError, MemoryError)
"""What an allocation that does not fit raises: CUDA's allocator, or Python's on the host."""
T = TypeVar("T")
R = TypeVar("R")


def free_memory(device: torch.device) -> int:
    """Bytes free now: on the CUDA device, else the host's MemAvailable (Linux)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError, IndexError) as exc:
        raise DataError(f"cannot read the free memory of this host ({exc}); give the memory budget in GB") from exc


def memory_budget(value: object, what: str, device: torch.device) -> int:
    """A budget from params or the command line, in bytes: ``"auto"`` (half of what ``device`` has free
    now) or a positive number of GB; DataError naming ``what`` otherwise."""
    if value == "auto":
        return free_memory(torch.device(device)) // 2
    try:
        gb = float(value) if isinstance(value, (int, float, str)) and not isinstance(value, bool) else math.nan
    except ValueError:
        gb = math.nan
    if not 0 < gb < math.inf:
        raise DataError(f"{what} must be auto or a positive number of GB, got {value!r}")
    return int(gb * GIB)


def _status_bytes(field: str) -> int | None:
    """A ``kB`` field of /proc/self/status (Linux) in bytes; None elsewhere."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            return next(int(line.split()[1]) * 1024 for line in fh if line.startswith(f"{field}:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return None


def _rss_now() -> int:
    """This process's resident memory now, in bytes (0 where it cannot be read)."""
    return _status_bytes("VmRSS") or 0


def _rss_peak() -> int:
    """This process's peak resident memory in bytes: its own high-water mark (``VmHWM``), not the ``ru_maxrss``
    it inherits across ``exec`` from the process it was forked from (DVC, for a stage); ``ru_maxrss`` where
    /proc is absent (KiB on Linux, bytes on macOS)."""
    if (peak := _status_bytes("VmHWM")) is not None:
        return peak
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def cuda_peak() -> int:
    """The largest ``torch.cuda.max_memory_allocated`` of this process's CUDA devices (0 without CUDA)."""
    if not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return 0
    return max(torch.cuda.max_memory_allocated(i) for i in range(torch.cuda.device_count()))


@dataclass(frozen=True)
class PeakUsage:
    """What a process used at its peak, in bytes: its resident memory and CUDA's allocations. Its data-loader
    workers are processes of their own (forked: they share most of its pages) and are not counted."""

    rss: int
    cuda: int

    def __str__(self) -> str:
        return f"peak RSS {self.rss / GIB:.2f} GB, CUDA {self.cuda / GIB:.2f} GB"


def peak_usage() -> PeakUsage:
    """This process's :class:`PeakUsage` so far."""
    return PeakUsage(_rss_peak(), cuda_peak())


@dataclass
class Measured:
    """Bytes a measured block needed (:func:`measure_peak`); 0 when it could not be told."""

    bytes: int = 0


@contextlib.contextmanager
def measure_peak(device: torch.device) -> Iterator[Measured]:
    """What the block needs above what was in use before it: the rise of CUDA's peak allocation on
    ``device``, else of the process's peak resident memory.

    The peak counters are never reset (a stage's own peak stays readable), so the figure is an upper
    bound: exact when the block sets a new peak, else the headroom below the earlier peak.
    """
    measured = Measured()
    if device.type == "cuda":
        before = torch.cuda.memory_allocated(device)
        yield measured
        measured.bytes = max(0, torch.cuda.max_memory_allocated(device) - before)
    else:
        before = _rss_now()
        yield measured
        measured.bytes = max(0, _rss_peak() - before) if before else 0


def release(device: torch.device) -> None:
    """Give back what a failed batch left allocated (garbage, and CUDA's cached blocks)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def fitting(budget: int, per_item: float, limit: int) -> int:
    """Items per batch: as many as ``budget`` bytes hold at ``per_item`` bytes each, between 1 and ``limit``
    (``limit`` when the cost is unknown, 0)."""
    if per_item <= 0:
        return limit
    return max(1, min(limit, int(budget // per_item)))


@dataclass
class BoundedBatches:
    """Consecutive batches of ``items`` whose working memory fits ``budget`` bytes on ``device``.

    The first batch is one item, measured (:func:`measure_peak`); the batch size is then :func:`fitting`
    (at most ``limit``) and kept. On an out-of-memory error the batch is halved (rounding up) and the same
    items run again; one item that does not fit is a DataError. ``what``/``unit`` name the work in logs
    (``"masks"``, ``"pair"``).
    """

    limit: int
    budget: int
    device: torch.device
    what: str
    unit: str = "item"
    size: int | None = None

    def run(self, items: Sequence[T], work: Callable[[list[T]], R]) -> Iterator[tuple[list[T], R]]:
        """``(batch, work(batch))`` for consecutive batches covering ``items`` in order."""
        start = 0
        while start < len(items):
            n = min(self.size or 1, len(items) - start)
            batch = list(items[start : start + n])
            try:
                with measure_peak(self.device) as measured:
                    result = work(batch)
            except OUT_OF_MEMORY as exc:
                self._halve(n, exc)
                continue
            if self.size is None:
                self._choose(measured.bytes)
            start += n
            yield batch, result

    def _choose(self, per_item: int) -> None:
        self.size = fitting(self.budget, per_item, self.limit)
        cost = f"about {per_item / GIB:.2f} GB" if per_item else "an unmeasurable amount"
        log.info(
            "%s: one %s needs %s on %s; budget %.2f GB: %d %s%s per batch (at most %d)",
            self.what,
            self.unit,
            cost,
            self.device,
            self.budget / GIB,
            self.size,
            self.unit,
            "" if self.size == 1 else "s",
            self.limit,
        )

    def _halve(self, n: int, exc: BaseException) -> None:
        release(self.device)
        if n == 1:
            raise DataError(
                f"{self.what}: one {self.unit} does not fit in the memory of {self.device} "
                f"({' '.join(str(exc).split())[:200]}); free memory on it or use a smaller model"
            ) from exc
        self.size = (n + 1) // 2
        log.warning(
            "%s: out of memory with %d %ss on %s; retrying them %d at a time",
            self.what,
            n,
            self.unit,
            self.device,
            self.size,
        )


def retry_halving(run: Callable[[int], R], batch: int, *, what: str, device: torch.device) -> R:
    """``run(batch)``, and on an out-of-memory error ``run`` again with half the batch (logged) until it
    fits; DataError when a batch of one does not."""
    while True:
        try:
            return run(batch)
        except OUT_OF_MEMORY as exc:
            release(device)
            if batch == 1:
                raise DataError(
                    f"{what}: a batch of one does not fit in the memory of {device} "
                    f"({' '.join(str(exc).split())[:200]})"
                ) from exc
            log.warning("%s: out of memory at batch %d on %s; retrying at batch %d", what, batch, device, batch // 2)
            batch //= 2
