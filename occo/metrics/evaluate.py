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

import csv
import io
import logging
import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm import tqdm

from occo.data.io import DataError, load_array, read_size
from occo.data.pairs import Pair, image_size, index_images, load_pair
from occo.metrics.suite import METRICS, grey_levels, prepare_sources, score
from occo.pipeline.device import resolve_batch_size, resolve_device, usable_cpus

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

ScoreRow = dict[str, Any]
"""One image's scores: ``{method, id, *METRICS}``."""

PixelFusion = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# Pixel-level reference fusions of the grey sources (a = infrared, b = visible), rounded to levels.
BASELINES: dict[str, PixelFusion] = {
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


MIN_SIDE = 2
"""Fewest pixels per side an image may have to be scored (a gradient needs two)."""


def _load_item(pair: Pair, folders: dict[str, dict[str, Path]], variant: str) -> _Item:
    """One pair's sources and every method's fused image, as the variant's grey levels; DataError for an image
    narrower than :data:`MIN_SIDE` (the gradient metrics need a neighbour along each axis)."""
    ir, vi = load_pair(pair)
    if min(ir.shape[:2]) < MIN_SIDE:
        raise DataError(f"{pair.ir} is {image_size(ir)}: the metrics need at least {MIN_SIDE} pixels per side")
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


def _jobs(pairs: list[Pair], batch_size: int) -> list[list[Pair]]:
    """Pairs cut into jobs: one pair each, or up to ``batch_size`` pairs of one size (from the headers)."""
    if batch_size == 1:
        return [[p] for p in pairs]
    by_size: dict[tuple[int, int], list[Pair]] = {}
    for p in pairs:
        by_size.setdefault(read_size(p.ir), []).append(p)
    return [group[i : i + batch_size] for group in by_size.values() for i in range(0, len(group), batch_size)]


def _score_job(
    items: list[_Item], methods: dict[str, Path | None], variant: str, device: torch.device
) -> list[ScoreRow]:
    """Rows of every method on one job's items: sources analysed once, each method scored against them."""

    def stack(arrays: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(arrays)).to(device)

    a, b = stack([it.ir for it in items]), stack([it.vi for it in items])
    sources = prepare_sources(a, b, variant)
    rows: list[ScoreRow] = []
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


def _index_methods(pairs: list[Pair], methods: dict[str, Path | None]) -> dict[str, dict[str, Path]]:
    """The fused images of every method folder by pair id. An unknown baseline raises ValueError, a
    folder matching no pair DataError; a folder lacking some pairs is warned about."""
    unknown = [m for m, folder in methods.items() if folder is None and m not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; known: {', '.join(BASELINES)}")
    folders = {m: index_images(folder) for m, folder in methods.items() if folder is not None}
    ids = {p.id for p in pairs}
    for method, files in folders.items():
        missing = sorted(ids - files.keys())
        if missing:
            log.warning(
                "%s: %d of %d pairs have no fused image in %s (e.g. %s); scored on the rest",
                method,
                len(missing),
                len(ids),
                methods[method],
                ", ".join(missing[:5]),
            )
        if not ids & files.keys():
            raise DataError(f"no fused image in {methods[method]} matches any pair id")
    return folders


def _run_jobs(
    jobs: list[list[Pair]], run: Callable[[list[Pair]], list[ScoreRow]], *, workers: int, threads: int, desc: str
) -> list[ScoreRow]:
    """Every job's rows, in job order: ``workers`` threads, each running torch on ``threads`` threads."""
    rows: list[ScoreRow] = []
    # torch's OpenMP and MKL thread counts are per thread: each worker sets its own before its first op.
    with (
        _torch_threads(threads),
        ThreadPoolExecutor(workers, initializer=torch.set_num_threads, initargs=(threads,)) as pool,
    ):
        with tqdm(total=sum(len(job) for job in jobs), desc=desc, unit="pair") as bar:
            try:
                for job, job_rows in zip(jobs, _in_order(pool, run, jobs, ahead=2 * workers)):
                    rows += job_rows
                    bar.update(len(job))
            except BaseException:
                pool.shutdown(cancel_futures=True)
                raise
    return rows


def score_pairs(
    pairs: list[Pair],
    methods: dict[str, Path | None],
    *,
    variant: str = "matlab",
    device: str = "auto",
    batch_size: int | str = "auto",
    workers: int | None = None,
    desc: str = "evaluate",
) -> list[ScoreRow]:
    """Per-image metrics of every method on ``pairs``: one row ``{method, id, *METRICS}`` per
    (method, id), ordered by method (as in ``methods``), then id.

    ``methods`` maps a name to a folder of fused images (files named by pair id, any image
    extension) or to ``None`` for a baseline of :data:`BASELINES`. A folder lacking some ids is
    scored on the ids it has (a warning lists how many are missing). ``workers`` threads decode and
    score (default: one per core; on CPU torch then runs single-threaded in each).
    """
    folders = _index_methods(pairs, methods)
    dev = resolve_device(device)
    jobs = _jobs(pairs, resolve_batch_size(batch_size, dev))
    cores = usable_cpus()
    workers = cores if workers is None else workers
    if workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers}")
    threads = max(1, cores // workers) if dev.type == "cpu" else torch.get_num_threads()

    def run(job: list[Pair]) -> list[ScoreRow]:
        return _score_job([_load_item(p, folders, variant) for p in job], methods, variant, dev)

    rows = _run_jobs(jobs, run, workers=workers, threads=threads, desc=desc)
    rank = {m: i for i, m in enumerate(methods)}
    return sorted(rows, key=lambda row: (rank[row["method"]], row["id"]))


def evaluate_pairs(pairs: list[Pair], methods: dict[str, Path | None], **kwargs: Any) -> pd.DataFrame:
    """:func:`score_pairs` as a DataFrame with the columns ``method, id`` and :data:`METRICS`."""
    import pandas as pd  # only here: `occo evaluate` works on rows and spares the import

    return pd.DataFrame(score_pairs(pairs, methods, **kwargs), columns=["method", "id", *METRICS])


def rows_to_csv(rows: Iterable[Mapping[str, Any]]) -> str:
    """Rows of :func:`score_pairs` as CSV text (header ``method,id,*METRICS``; NaN as an empty field,
    floats at full precision), the same table ``pandas.read_csv`` reads back."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["method", "id", *METRICS])
    for row in rows:
        values = [float(row[m]) for m in METRICS]
        writer.writerow([row["method"], row["id"], *("" if math.isnan(v) else repr(v) for v in values)])
    return out.getvalue()


def parse_rows(text: str) -> list[ScoreRow]:
    """Rows of :func:`rows_to_csv`'s CSV text (metric values as floats, empty as NaN), exactly as written;
    DataError naming the columns it lacks."""
    reader = csv.DictReader(io.StringIO(text))
    if missing := [c for c in ("method", "id", *METRICS) if c not in (reader.fieldnames or ())]:
        raise DataError(f"missing columns {', '.join(missing)}")
    return [
        {
            "method": record["method"],
            "id": record["id"],
            **{m: float(record[m]) if record[m] else math.nan for m in METRICS},
        }
        for record in reader
    ]


def summarise(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Mean of every metric per method, plus ``n`` (images scored), in the rows' method order.

    ``rows``: :func:`score_pairs`'s rows (or ``frame.to_dict("records")``). A metric undefined on
    some image (e.g. SCD of the ``visible`` baseline, a correlation with a constant difference
    image) is undefined on average too, as in the MATLAB code: it becomes ``None`` (JSON ``null``)
    rather than a NaN that strict JSON readers reject.
    """
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(str(row["method"]), []).append(row)
    out: dict[str, dict[str, float | None]] = {}
    for method, group in groups.items():
        means = {m: float(np.mean([float(r[m]) for r in group])) for m in METRICS}
        out[method] = {m: (v if math.isfinite(v) else None) for m, v in means.items()} | {"n": len(group)}
    return out


def fusion_table(summary: dict[str, dict[str, float | None]], *, title: str | None = None, digits: int = 4) -> str:
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


def split_by_coverage(summary: Mapping[str, Mapping[str, Any]]) -> tuple[list[str], dict[str, int], int]:
    """Which methods a fair table lists: ``(listed, left_out, pairs)``. ``pairs`` is the most images any method
    was scored on (the baselines, computed from the sources, have every pair of the split); ``listed`` are the
    methods scored on all of them, ``left_out`` the others with their counts (published results that cover
    part of a set, e.g. 16 of TNO's 21 pairs)."""
    pairs = max((int(s["n"]) for s in summary.values()), default=0)
    listed = [m for m, s in summary.items() if int(s["n"]) == pairs]
    return listed, {m: int(s["n"]) for m, s in summary.items() if int(s["n"]) < pairs}, pairs


def common_pairs(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The rows of the images every method was scored on (the intersection of the methods' ids)."""
    rows = list(rows)
    ids: dict[str, set[str]] = {}
    for row in rows:
        ids.setdefault(str(row["method"]), set()).add(str(row["id"]))
    shared = set.intersection(*ids.values()) if ids else set()
    return [r for r in rows if str(r["id"]) in shared]


def fair_tables(rows: Iterable[Mapping[str, Any]], *, title: str) -> str:
    """The paper's protocol as markdown: every method compared on the same images. The first table lists the
    methods scored on every pair (:func:`split_by_coverage`); the others are named with their counts, then
    compared with all the rest on the pairs they all have (:func:`common_pairs`), when there are any."""
    rows = list(rows)
    summary = summarise(rows)
    listed, left_out, pairs = split_by_coverage(summary)
    text = fusion_table({m: summary[m] for m in listed}, title=title)
    if not left_out:
        return text
    names = ", ".join(f"{m} ({n} of {pairs} pairs)" for m, n in left_out.items())
    text += f"\nLeft out, scored on fewer pairs than the others: {names}.\n"
    common = summarise(common_pairs(rows))
    if common:
        n = next(iter(common.values()))["n"]
        text += "\n" + fusion_table(common, title=f"Every method on the {n} pairs all of them were scored on")
    return text
