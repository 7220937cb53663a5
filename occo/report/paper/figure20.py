"""The paper's Fig. 20 (§4.5): RFN-Nest (a) with its published weights, (b) re-trained with L_RFN, (c) with
L_RFN + β·L_CCL, from this run and the workspace's other experiments.

A run is a panel of Fig. 20 by its params: ``arch.name: rfn_nest`` and ``train.stage: published`` is (a);
trained with ``loss.terms: [rfn]`` is (b), with ``[rfn, ccl]`` is (c); any other run is not in the figure.
Each Fig. 20 run's report stage keeps its own fused images of the figure's pairs in ``reports/fig20/``
(small PNGs and ``run.json``; git carries them in every experiment commit, as it carries metrics), so the
report of any run can set every panel side by side: infrared | visible | the runs' fused images, then the
runs' fusion metrics per dataset and, where they ran, detection and segmentation (from each run's
``metrics/fusion/<dataset>.json`` and ``metrics/headline.json``).
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFont

from occo.config import Params, as_dict
from occo.data.io import DataError, load_array, save_png, write_text_atomic
from occo.data.pairs import find_pairs
from occo.pipeline.sources import FUSED
from occo.report.git import experiment_refs, git_bytes, revision
from occo.report.headline import TRAINED
from occo.report.paper.runs import params_at
from occo.report.paper.studies import MISSING, value_at
from occo.report.render.document import Block, Figure, Heading, Paragraph, TableBlock
from occo.report.render.gallery import choose_ids, grid, tile, to_rgb
from occo.report.render.tables import Row, Table

log = logging.getLogger(__name__)

FIG20 = Path("reports/fig20")
TILE_HEIGHT = 200
STORED_HEIGHT = 400
"""Fused images are kept at most this high (they are shown at the gallery's tile height)."""
PANELS = {
    "a": "public weights (trained on KAIST)",
    "b": "re-trained with L_RFN (Eq. 22-23)",
    "c": "re-trained with L_RFN + beta L_CCL (Eq. 24)",
}
DOWNSTREAM = {"detect.ap50": "mAP50", "detect.ap50_95": "mAP50-95", "segment.miou": "mIoU"}


def _param(params: Mapping[str, object], key: str, default: object) -> object:
    value = value_at(params, key)
    return default if value is MISSING else value


def panel_of(params: Mapping[str, object]) -> str | None:
    """The panel of Fig. 20 a run with ``params`` (as params.yaml spells them) shows, or None."""
    if _param(params, "arch.name", "fifn") != "rfn_nest":
        return None
    if _param(params, "train.stage", "fusion") == "published":
        return "a"
    terms = _param(params, "loss.terms", ["occo"])
    return {("rfn",): "b", ("ccl", "rfn"): "c"}.get(tuple(sorted(terms)) if isinstance(terms, list) else ())


def trained_on(params: Mapping[str, object]) -> str:
    """Where and how long a run trained, in a few words (runs of other lengths are never compared silently)."""
    if _param(params, "train.stage", "fusion") == "published":
        return "KAIST (published)"
    where = f"{_param(params, 'train.dataset', '?')}/{_param(params, 'train.split', '?')}"
    steps = _param(params, "train.max_steps", None)
    length = f"{steps} steps" if steps is not None else f"{_param(params, 'train.epochs', '?')} epochs"
    stage = _param(params, "train.stage", "fusion")
    return f"{where}, {length}" + (", auto-encoder too" if stage == "both" else "")


@dataclass(frozen=True)
class Fig20Run:
    """A run in Fig. 20: its panel, name, params, and how to read one of its files (None when absent)."""

    panel: str
    name: str
    params: Mapping[str, object]
    read: Callable[[str], bytes | None]

    @property
    def label(self) -> str:
        return f"({self.panel}) {self.name}"

    def json(self, path: str) -> dict | None:
        data = self.read(path)
        try:
            doc = json.loads(data) if data is not None else None
        except ValueError:
            return None
        return doc if isinstance(doc, dict) else None


def _workspace_file(root: Path, path: str) -> bytes | None:
    file = root / path
    return file.read_bytes() if file.is_file() else None


def fig20_runs(root: Path, cfg: Params, name: str, headline: dict[str, float]) -> tuple[list[Fig20Run], list[str]]:
    """This run (named ``name``, its ``headline`` computed here) and the experiments of HEAD's baseline that are
    panels of Fig. 20, by panel then name; notes on experiments that could not be read."""
    runs, notes = [], []
    current = as_dict(cfg)
    if (panel := panel_of(current)) is not None:
        files = {"metrics/headline.json": json.dumps(headline).encode()}
        runs.append(Fig20Run(panel, name, current, lambda p: files.get(p) or _workspace_file(root, p)))
    head, refs = revision(root), experiment_refs(root)
    for ref in [r for r in refs or [] if r.baseline == head and r.name != name]:
        params = params_at(root, ref.commit)
        if params is None:
            notes.append(f"experiment {ref.name}: params.yaml unreadable at {ref.commit[:7]}, skipped")
            continue
        if (panel := panel_of(params)) is not None:
            runs.append(Fig20Run(panel, ref.name, params, lambda p, c=ref.commit: git_bytes(root, c, p)))
    return sorted(runs, key=lambda r: (r.panel, r.name)), notes


def write_fig20_images(root: Path, cfg: Params, out_dir: Path) -> list[Path]:
    """This run's part of Fig. 20 in ``out_dir`` (``reports/fig20``): ``run.json`` (its panel, the gallery's
    dataset, split and ids) and, for a Fig. 20 run, its fused image of each id (at most STORED_HEIGHT high)."""
    gallery, panel = cfg.report.fig20_gallery, panel_of(as_dict(cfg))
    written, ids = [], []
    data = root / "data/raw" / gallery.dataset / gallery.split
    fused = root / FUSED / TRAINED / gallery.dataset / gallery.split
    if panel is not None and (data / "ir").is_dir() and fused.is_dir():
        pairs = [p.id for p in find_pairs(ir=data / "ir", vi=data / "vi")]
        ids = choose_ids(pairs, [str(i) for i in gallery.ids], gallery.n, data)
        for image_id in ids:
            if not (source := fused / f"{image_id}.png").is_file():
                continue
            with Image.open(source) as im:
                im = im.convert("RGB")
                if im.height > STORED_HEIGHT:
                    im = im.resize(
                        (round(im.width * STORED_HEIGHT / im.height), STORED_HEIGHT), Image.Resampling.LANCZOS
                    )
                save_png(out_dir / f"{image_id}.png", np.asarray(im))
            written.append(out_dir / f"{image_id}.png")
    run = {"panel": panel, "dataset": gallery.dataset, "split": gallery.split, "ids": ids}
    write_text_atomic(out_dir / "run.json", json.dumps(run, indent=2) + "\n")
    return written


def _keeps(run: Fig20Run, dataset: str, split: str) -> bool:
    """Whether ``run`` kept its fused images of ``dataset``/``split`` (its ``reports/fig20/run.json``)."""
    info = run.json(f"{FIG20.as_posix()}/run.json") or {}
    return info.get("dataset") == dataset and info.get("split") == split


def _run_image(run: Fig20Run, image_id: str) -> np.ndarray | None:
    """A run's kept fused image of ``image_id``, if it kept one."""
    data = run.read(f"{FIG20.as_posix()}/{image_id}.png")
    if data is None:
        return None
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def fig20_gallery(root: Path, cfg: Params, runs: list[Fig20Run], out_dir: Path) -> list[Block]:
    """One row per pair of ``report.fig20_gallery``: infrared | visible | each run's fused image."""
    gallery = cfg.report.fig20_gallery
    where = f"{gallery.dataset}/{gallery.split}"
    data = root / "data/raw" / gallery.dataset / gallery.split
    if not (data / "ir").is_dir() or not (data / "vi").is_dir():
        return [Paragraph(f"No gallery: no images at data/raw/{where} (report.fig20_gallery).")]
    pairs = {p.id: p for p in find_pairs(ir=data / "ir", vi=data / "vi")}
    try:
        ids = choose_ids(list(pairs), [str(i) for i in gallery.ids], gallery.n, data)
    except DataError as exc:
        return [Paragraph(f"No gallery: {exc}.")]
    font = ImageFont.load_default(size=14)
    blocks: list[Block] = [
        Paragraph(f"{where}, left to right: infrared | visible | {' | '.join(r.label for r in runs)}.")
    ]
    keeps = [_keeps(r, gallery.dataset, gallery.split) for r in runs]
    for image_id in ids:
        images = [
            ("infrared", to_rgb(load_array(pairs[image_id].ir))),
            ("visible", to_rgb(load_array(pairs[image_id].vi))),
        ]
        images += [(r.label, _run_image(r, image_id) if keep else None) for r, keep in zip(runs, keeps)]
        height, width = images[0][1].shape[:2]
        size = (max(1, round(width * TILE_HEIGHT / height)), TILE_HEIGHT)
        path = out_dir / f"fig20_{gallery.dataset}_{gallery.split}_{image_id}.png"
        save_png(path, grid([tile(img, label, size, font) for label, img in images], len(images)))
        blocks.append(Figure(path, f"Fig. 20, {where} {image_id}"))
    return blocks


def fig20_tables(runs: list[Fig20Run], datasets: list[str], columns: list[str]) -> list[Block]:
    """Per dataset the runs' fusion metrics side by side (their trained network's row, ``occo``), then detection
    and segmentation where some run has them."""
    blocks: list[Block] = []
    for dataset in datasets:
        rows = []
        for run in runs:
            scores = (run.json(f"metrics/fusion/{dataset}.json") or {}).get(TRAINED)
            if isinstance(scores, dict):
                values = {c: scores.get(c) for c in ["n", *columns]}
                rows.append(Row(run.label, values))
        if rows:
            table = Table(columns=columns, rows=rows, info_columns=["n"], label_header="Run")
            notes = "; ".join(f"{r.label}: {trained_on(r.params)}" for r in runs)
            blocks += [Heading(f"{dataset}", 3), TableBlock(table, f"Fusion metrics on {dataset}. Trained: {notes}.")]
    headlines = {run.label: run.json("metrics/headline.json") or {} for run in runs}
    downstream = {
        label: {f"{d} {name}": headline.get(f"{d}.{key}") for d in datasets for key, name in DOWNSTREAM.items()}
        for label, headline in headlines.items()
    }
    present = [
        c
        for c in dict.fromkeys(k for v in downstream.values() for k in v)
        if any(v[c] is not None for v in downstream.values())
    ]
    if present:
        table = Table(columns=present, rows=[Row(label, v) for label, v in downstream.items()], label_header="Run")
        blocks.append(
            TableBlock(table, "Detection (mAP, the paper's 'all') and segmentation (mIoU) of each run's images.")
        )
    return blocks


def figure20_section(
    root: Path, cfg: Params, runs: list[Fig20Run], notes: list[str], gallery_dir: Path, columns: list[str]
) -> list[Block]:
    """The report's Fig. 20 section: which runs are which panel, the gallery, the metric tables."""
    blocks: list[Block] = [Heading("RFN-Nest with the contextual contrastive loss (§4.5, Fig. 20)")]
    if not runs:
        return blocks + [
            Paragraph(
                "Not run: no RFN-Nest run (`arch.name: rfn_nest`) among this run and the workspace's experiments; "
                "docs/experiments.md gives the three `dvc exp run` lines of Fig. 20."
            )
        ]
    panels = "; ".join(f"({p}) {text}" for p, text in PANELS.items())
    blocks.append(Paragraph(f"Panels: {panels}. Runs: " + ", ".join(f"`{r.name}` ({r.panel})" for r in runs) + "."))
    blocks += fig20_gallery(root, cfg, runs, gallery_dir)
    blocks += fig20_tables(runs, list(cfg.report.fig20_datasets), columns)
    return blocks + [Paragraph(note) for note in notes]
