"""Evaluate fused images against their sources: the engine behind `occo evaluate` and the evaluate stage.

Work is cut into jobs of pairs (one pair on CPU, a batch of same-size pairs on CUDA). A job decodes
its infrared, visible and fused images once, reduces them to grey levels the way the metric variant
reads them, analyses the sources once (:func:`~occo.metrics.suite.prepare_sources`) and scores every
method against them. Jobs run on a few threads with a bounded look-ahead, so memory does not grow
with the dataset; on CPU each thread runs torch single-threaded (threads × torch threads ≤ cores).
Baseline "methods" are computed from the sources; every other method is a folder of fused images
named by pair id.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from tqdm import tqdm

from occo.data.io import DataError, load_array
from occo.data.pairs import Pair, image_size, index_images, load_pair
from occo.device import resolve_batch_size, resolve_device
from occo.metrics.suite import METRICS, grey_levels, prepare_sources, score

log = logging.getLogger(__name__)

Baseline = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# Pixel-level reference fusions of the grey sources (a = infrared, b = visible), rounded to levels.
BASELINES: dict[str, Baseline] = {
    "visible": lambda a, b: b,
    "infrared": lambda a, b: a,
    "mean": lambda a, b: torch.round((a.double() + b) / 2),
    "max": torch.maximum,
}


@dataclass
class _Item:
    id: str
    ir: np.ndarray
    vi: np.ndarray
    fused: dict[str, np.ndarray] = field(default_factory=dict)


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _load(pair: Pair, folders: dict[str, dict[str, Path]], variant: str) -> _Item:
    ir, vi = load_pair(pair)
    item = _Item(pair.id, grey_levels(ir, variant), grey_levels(vi, variant))
    for method, files in folders.items():
        path = files.get(pair.id)
        if path is None:
            continue
        fused = load_array(path)
        if fused.shape[:2] != ir.shape[:2]:
            raise DataError(
                f"size mismatch for {method} {pair.id}: fused {path} is {image_size(fused)}, "
                f"sources are {image_size(ir)}"
            )
        item.fused[method] = grey_levels(fused, variant)
    return item


def _header_size(path: Path) -> tuple[int, int]:
    """(width, height) from an image file's header, without decoding it."""
    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"cannot read image {path}: {' '.join(str(exc).split())}") from exc


def _jobs(pairs: list[Pair], batch_size: int) -> list[list[Pair]]:
    """Pairs cut into jobs: one pair each, or up to ``batch_size`` pairs of one size (from the headers)."""
    if batch_size == 1:
        return [[p] for p in pairs]
    by_size: dict[tuple[int, int], list[Pair]] = {}
    for p in pairs:
        by_size.setdefault(_header_size(p.ir), []).append(p)
    return [group[i : i + batch_size] for group in by_size.values() for i in range(0, len(group), batch_size)]


def _score(items: list[_Item], methods: dict[str, Path | None], variant: str, device: torch.device) -> list[dict]:
    """Rows of every method on one job's items: sources analysed once, each method scored against them."""

    def stack(arrays: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(arrays)).to(device)

    a, b = stack([it.ir for it in items]), stack([it.vi for it in items])
    sources = prepare_sources(a, b, variant)
    rows = []
    for method, folder in methods.items():
        if folder is None:
            keep = list(range(len(items)))
            f = BASELINES[method](a, b)
        else:
            keep = [i for i, it in enumerate(items) if method in it.fused]
            if not keep:
                continue
            # A pair this method lacks is scored on a stand-in (its visible image) and dropped.
            f = stack([it.fused.get(method, it.vi) for it in items])
        values = score(f, sources)
        table = torch.stack([values[m] for m in METRICS], dim=1).cpu().numpy()
        rows += [{"method": method, "id": items[i].id, **dict(zip(METRICS, table[i]))} for i in keep]
    return rows


def _in_order(pool: ThreadPoolExecutor, fn: Callable, jobs: Iterable, ahead: int) -> Iterator:
    """``map(fn, jobs)`` on ``pool`` with at most ``ahead`` jobs submitted and not yet consumed
    (``Executor.map`` submits every job at once; jobs must not be None)."""
    todo = iter(jobs)
    pending: deque[Future] = deque(pool.submit(fn, job) for job in islice(todo, ahead))
    while pending:
        result = pending.popleft().result()
        nxt = next(todo, None)
        if nxt is not None:
            pending.append(pool.submit(fn, nxt))
        yield result


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Run torch's CPU kernels on ``n`` threads inside the block (threads it starts pick this up)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def evaluate_pairs(
    pairs: list[Pair],
    methods: dict[str, Path | None],
    *,
    variant: str = "matlab",
    device: str = "auto",
    batch_size: int | str = "auto",
    workers: int | None = None,
    desc: str = "evaluate",
) -> pd.DataFrame:
    """Per-image metrics of every method on ``pairs``.

    ``methods`` maps a name to a folder of fused images (files named by pair id, any image
    extension) or to ``None`` for a baseline of :data:`BASELINES`. A folder lacking some ids is
    scored on the ids it has (a warning lists how many are missing). ``workers`` threads decode and
    score (default: one per core; on CPU torch then runs single-threaded in each). Returns one row
    per (method, id) with the columns ``method, id`` and :data:`METRICS`.
    """
    unknown = [m for m, folder in methods.items() if folder is None and m not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; known: {', '.join(BASELINES)}")
    folders = {m: index_images(folder) for m, folder in methods.items() if folder is not None}
    ids = {p.id for p in pairs}
    for method, files in folders.items():
        missing = sorted(ids - files.keys())
        if missing:
            log.warning("%s: %d of %d pairs have no fused image in %s (e.g. %s); scored on the rest",
                        method, len(missing), len(ids), methods[method], ", ".join(missing[:5]))
        if not ids & files.keys():
            raise DataError(f"no fused image in {methods[method]} matches any pair id")
    dev = resolve_device(device)
    jobs = _jobs(pairs, resolve_batch_size(batch_size, dev))
    cores = available_cores()
    workers = cores if workers is None else workers
    if workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers}")

    def run(job: list[Pair]) -> list[dict]:
        return _score([_load(p, folders, variant) for p in job], methods, variant, dev)

    rows: list[dict] = []
    threads = max(1, cores // workers) if dev.type == "cpu" else torch.get_num_threads()
    # torch's OpenMP and MKL thread counts are per thread: each worker sets its own before its first op.
    with _torch_threads(threads), ThreadPoolExecutor(workers, initializer=torch.set_num_threads, initargs=(threads,)) as pool:
        with tqdm(total=len(pairs), desc=desc, unit="pair") as bar:
            try:
                for job, job_rows in zip(jobs, _in_order(pool, run, jobs, ahead=2 * workers)):
                    rows += job_rows
                    bar.update(len(job))
            except BaseException:
                pool.shutdown(cancel_futures=True)
                raise
    frame = pd.DataFrame(rows, columns=["method", "id", *METRICS])
    rank = frame["method"].map({m: i for i, m in enumerate(methods)})
    return frame.assign(_rank=rank).sort_values(["_rank", "id"]).drop(columns="_rank").reset_index(drop=True)


def summarise(per_image: pd.DataFrame) -> dict[str, dict[str, float | None]]:
    """Mean of every metric per method, plus ``n`` (images scored), in the frame's method order.

    A metric undefined on some image (e.g. SCD of the ``visible`` baseline, a correlation with a
    constant difference image) is undefined on average too, as in the MATLAB code: it becomes
    ``None`` (JSON ``null``) rather than a NaN that strict JSON readers reject.
    """
    out: dict[str, dict[str, float | None]] = {}
    for method, group in per_image.groupby("method", sort=False):
        means = group[list(METRICS)].mean(skipna=False)
        out[str(method)] = {m: (float(v) if np.isfinite(v) else None) for m, v in means.items()} | {"n": len(group)}
    return out


def markdown_table(summary: dict[str, dict[str, float | None]], *, title: str | None = None, digits: int = 4) -> str:
    """A paper-style table (rows = methods, columns = metrics, best value per column in bold).

    Every metric in the suite is higher-is-better, as in the paper's Tables 1–2; undefined → "–".
    """
    best = {m: max((s[m] for s in summary.values() if s[m] is not None), default=None) for m in METRICS}
    lines = [f"### {title}", ""] if title else []
    lines += ["| Method | n | " + " | ".join(METRICS) + " |", "|---|---:|" + "---:|" * len(METRICS)]
    for method, s in summary.items():
        cells = [
            "–" if s[m] is None else f"**{s[m]:.{digits}f}**" if s[m] == best[m] else f"{s[m]:.{digits}f}"
            for m in METRICS
        ]
        lines.append(f"| {method} | {s['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
