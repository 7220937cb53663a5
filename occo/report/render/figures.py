"""Matplotlib figures of the report (object API on the Agg canvas; pyplot's global state is not used)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from occo.data.io import atomic_path

OURS_COLOUR = "#d62728"
OTHER_COLOUR = "#7f9fbf"
BASELINE_COLOUR = "#c7c7c7"


def save_figure(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as PNG atomically."""
    FigureCanvasAgg(fig)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    return path


def training_curves(curves: dict[str, pd.DataFrame], path: Path, *, columns: int = 3) -> Path:
    """One panel per logged metric (loss terms, learning rate) against the optimiser step."""
    names = sorted(curves, key=lambda n: (n.endswith("/lr"), n != "train/total", n))
    rows = math.ceil(len(names) / columns)
    fig = Figure(figsize=(4.2 * min(columns, len(names)), 2.8 * rows), layout="constrained")
    for i, name in enumerate(names):
        ax = fig.add_subplot(rows, min(columns, len(names)), i + 1)
        curve = curves[name]
        ax.plot(curve["step"], curve["value"], marker="o" if len(curve) < 30 else None, markersize=3, color="#1f77b4")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    return save_figure(fig, path)


def metric_bars(
    frame: pd.DataFrame, metrics: list[str], path: Path, *, title: str, ours: list[str], baselines: list[str]
) -> Path:
    """One bar panel per metric, one bar per method; ours in red, pixel baselines in grey.

    Panels widen with the number of methods, and fewer go on a line (6 for a handful of methods,
    fewer as the list grows) so the figure stays about 20 inches wide.
    """
    metrics = [m for m in metrics if frame[m].notna().any()]
    panel_width = max(3.2, 0.32 * len(frame) + 1.2)
    n_cols = min(len(metrics), max(2, min(6, round(20 / panel_width))))
    rows = math.ceil(len(metrics) / n_cols)
    fig = Figure(figsize=(panel_width * n_cols, 3.0 * rows), layout="constrained")
    fig.suptitle(title, fontsize=11)
    colours = [OURS_COLOUR if m in ours else BASELINE_COLOUR if m in baselines else OTHER_COLOUR for m in frame.index]
    for i, metric in enumerate(metrics):
        ax = fig.add_subplot(rows, n_cols, i + 1)
        values = frame[metric].fillna(0.0)
        ax.bar(range(len(frame)), values, color=colours)
        ax.set_xticks(range(len(frame)), [str(m) for m in frame.index], rotation=60, ha="right", fontsize=7)
        ax.set_title(metric, fontsize=10)
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, path)
