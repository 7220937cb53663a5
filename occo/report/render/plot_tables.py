"""Long tables behind the `dvc plots` charts of dvc.yaml (drawn with .dvc/plots/series_*.json).

Each table has a ``series`` column, which the templates colour by: one series per loss term, per method
or per dataset in each chart. Paths are fixed, so dvc.yaml can declare them whatever datasets and
methods a run has:

    reports/plots/train_loss.csv     step, series (loss term), value       dvclive/train
    reports/plots/segment_loss.csv   step, series (dataset/method), value  dvclive/segment*/<ds>/<method>
    reports/plots/fusion_<M>.csv     method, series (dataset), value       metrics/fusion, M in EN SF AG CC
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from occo.report.collect import Collected, read_curve
from occo.report.headline import FUSION_KEYS

SEGMENT_LIVE = ("dvclive/segment_reference", "dvclive/segment")


def train_loss(curves: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Every logged ``train/<term>`` curve but the learning rate, long: step, series, value."""
    frames = [
        frame.assign(series=name.removeprefix("train/"))
        for name, frame in curves.items()
        if name.startswith("train/") and name != "train/lr"
    ]
    return _long(frames, "step")


def segment_loss(root: Path) -> pd.DataFrame:
    """The segmentation training loss of every method (``<dataset>/<method>``), long: step, series, value."""
    frames = []
    for base in SEGMENT_LIVE:
        for path in sorted((root / base).glob("*/*/plots/metrics/train/loss.tsv")):
            method_dir = path.parents[3]
            frames.append(read_curve(path).assign(series=f"{method_dir.parent.name}/{method_dir.name}"))
    return _long(frames, "step")


def fusion_metric(fusion: dict[str, pd.DataFrame], metric: str) -> pd.DataFrame:
    """One fusion metric of every method on every dataset, long: method, series (dataset), value."""
    frames = [
        pd.DataFrame({"method": frame.index, "series": dataset, "value": frame[metric].to_numpy()})
        for dataset, frame in fusion.items()
        if metric in frame
    ]
    return _long(frames, "method").dropna(subset=["value"])


def _long(frames: list[pd.DataFrame], key: str) -> pd.DataFrame:
    columns = [key, "series", "value"]
    return pd.concat([f[columns] for f in frames], ignore_index=True) if frames else pd.DataFrame(columns=columns)


def write_plot_tables(root: Path, data: Collected, out: Path) -> list[Path]:
    """Write every table into ``out`` (the report's plots folder); an empty table still has its header."""
    tables = {"train_loss": train_loss(data.curves), "segment_loss": segment_loss(root)}
    tables |= {f"fusion_{m}": fusion_metric(data.fusion, m) for m in FUSION_KEYS}
    paths = []
    for name, table in tables.items():
        path = out / f"{name}.csv"
        table.to_csv(path, index=False)
        paths.append(path)
    return paths
