"""Evaluate fused images against their sources: the engine behind `occo evaluate` and the evaluate stage.

Pairs are read on a thread pool, reduced to grey levels the way the chosen metric variant reads
them, grouped by image size and scored in batches on one device. Baseline "methods" are computed
from the sources on the fly; every other method is a folder of fused images named by pair id.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from occo.data.io import DataError, load_array
from occo.data.pairs import Pair, image_size, index_images, load_pair
from occo.device import resolve_batch_size, resolve_device
from occo.metrics.suite import METRICS, compute_metrics, grey_levels

log = logging.getLogger(__name__)

Baseline = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# Pixel-level reference fusions of the grey sources (a = infrared, b = visible), rounded to levels.
BASELINES: dict[str, Baseline] = {
    "visible": lambda a, b: b,
    "infrared": lambda a, b: a,
    "mean": lambda a, b: torch.round((a + b) / 2),
    "max": torch.maximum,
}


@dataclass
class _Item:
    id: str
    ir: np.ndarray
    vi: np.ndarray
    fused: dict[str, np.ndarray] = field(default_factory=dict)


def _load(pair: Pair, folders: dict[str, dict[str, Path]], variant: str) -> _Item:
    ir, vi = load_pair(pair)
    item = _Item(pair.id, grey_levels(ir, variant).astype(np.uint8), grey_levels(vi, variant).astype(np.uint8))
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
        item.fused[method] = grey_levels(fused, variant).astype(np.uint8)
    return item


def _batches(items: Iterator[_Item], batch_size: int) -> Iterator[list[_Item]]:
    """Group items of one image size into batches of at most ``batch_size``, in arrival order."""
    buckets: dict[tuple[int, int], list[_Item]] = {}
    for item in items:
        bucket = buckets.setdefault(item.ir.shape, [])
        bucket.append(item)
        if len(bucket) == batch_size:
            yield buckets.pop(item.ir.shape)
    yield from buckets.values()


def _score(batch: list[_Item], methods: dict[str, Path | None], variant: str, device: torch.device) -> list[dict]:
    def stack(arrays: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(arrays)).to(device=device, dtype=torch.float64)

    a, b = stack([it.ir for it in batch]), stack([it.vi for it in batch])
    rows = []
    for method, folder in methods.items():
        if folder is None:
            keep = list(range(len(batch)))
            f = BASELINES[method](a, b)
        else:
            keep = [i for i, it in enumerate(batch) if method in it.fused]
            if not keep:
                continue
            f = stack([batch[i].fused[method] for i in keep])
        idx = torch.tensor(keep, device=device)
        values = compute_metrics(f, a.index_select(0, idx), b.index_select(0, idx), variant)
        table = torch.stack([values[m] for m in METRICS], dim=1).cpu().numpy()
        rows += [{"method": method, "id": batch[i].id, **dict(zip(METRICS, row))} for i, row in zip(keep, table)]
    return rows


def evaluate_pairs(
    pairs: list[Pair],
    methods: dict[str, Path | None],
    *,
    variant: str = "matlab",
    device: str = "auto",
    batch_size: int | str = "auto",
    workers: int = 4,
    desc: str = "evaluate",
) -> pd.DataFrame:
    """Per-image metrics of every method on ``pairs``.

    ``methods`` maps a name to a folder of fused images (files named by pair id, any image
    extension) or to ``None`` for a baseline of :data:`BASELINES`. A folder lacking some ids is
    scored on the ids it has (a warning lists how many are missing). Returns one row per
    (method, id) with the columns ``method, id`` and :data:`METRICS`.
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
    size = resolve_batch_size(batch_size, dev)
    rows: list[dict] = []
    with ThreadPoolExecutor(max_workers=workers) as pool, tqdm(total=len(pairs), desc=desc, unit="pair") as bar:
        items = pool.map(lambda p: _load(p, folders, variant), pairs)
        for batch in _batches(items, size):
            rows += _score(batch, methods, variant, dev)
            bar.update(len(batch))
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
