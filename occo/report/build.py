"""Assemble the report: collect the metrics, draw the figures and gallery, write markdown and HTML.

Outputs (under the repository root):
  reports/report.md            tables + relative links to the figures and gallery,
  reports/report.html          the same page, self-contained (inline CSS, images as data URIs),
  reports/figures/*.png        training curves and fusion-metric bars,
  reports/gallery/*.png        one labelled row of images per chosen id,
  reports/plots/*.csv          long tables for the `dvc plots` charts of dvc.yaml (``plots.py``).
Every section whose inputs are absent says "not run" instead. Ours stands beside the paper's Tables
1–5 per dataset and, for the studies this workspace's experiments belong to, Tables 6–9.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from occo.data.io import DataError, atomic_dir, write_text_atomic
from occo.metrics.suite import METRICS
from occo.report.collect import Collected, collect, detect_frame, segment_frame
from occo.report.headline import TRAINED
from occo.report.paper.comparison import detect_beside, fusion_beside, segment_beside, studies_section
from occo.report.paper.reference import PaperReference, load_paper
from occo.report.paper.runs import Run, sibling_runs
from occo.report.paper.studies import show
from occo.report.provenance import Provenance, provenance
from occo.report.render.document import Banner, Block, Bullets, Figure, Heading, Paragraph, TableBlock, to_markdown
from occo.report.render.figures import metric_bars, training_curves
from occo.report.render.gallery import build_gallery
from occo.report.render.html import to_html
from occo.report.render.plots import write_plot_tables
from occo.report.render.tables import Row, Table, clean

log = logging.getLogger(__name__)

REPORTS = Path("reports")
TITLE = "OCCO report"


@dataclass(frozen=True)
class ReportConfig:
    """The ``report`` params section, checked."""

    gallery_dataset: str
    gallery_split: str
    gallery_ids: list[str] = field(default_factory=list)
    gallery_n: int = 4
    fusion_metrics: list[str] = field(default_factory=lambda: list(METRICS))
    compare_paper: bool = True
    ours: list[str] = field(default_factory=lambda: ["occo"])

    @classmethod
    def from_params(cls, section: dict) -> ReportConfig:
        """Build from ``params['report']``; unknown metric names raise DataError."""
        gallery = section.get("gallery") or {}
        metrics = section.get("fusion_metrics", "all")
        metrics = list(METRICS) if metrics == "all" else [str(m) for m in metrics]
        if unknown := [m for m in metrics if m not in METRICS]:
            raise DataError(
                f"params.yaml report.fusion_metrics: unknown {', '.join(unknown)} (known: {', '.join(METRICS)})"
            )
        return cls(
            gallery_dataset=str(gallery.get("dataset", "synthetic")),
            gallery_split=str(gallery.get("split", "test")),
            gallery_ids=[str(i) for i in gallery.get("ids") or []],
            gallery_n=int(gallery.get("n", 4)),
            fusion_metrics=metrics,
            compare_paper=bool(section.get("compare_paper", True)),
            ours=[str(m) for m in section.get("ours") or ["occo"]],
        )


def not_run(what: str, why: str) -> Paragraph:
    return Paragraph(f"Not run: {what} ({why}).")


def stamp_section(stamp: Provenance) -> list[Block]:
    """Which experiment and revision the report is of, and a banner when any model was random-init."""
    name = f"experiment `{stamp.experiment}`" if stamp.experiment else "not a `dvc exp run` (no DVC_EXP_NAME)"
    rev = f"git revision `{stamp.revision[:12]}`" if stamp.revision else "git revision unknown (not a git repository)"
    blocks: list[Block] = [Paragraph(f"Run: {name}; {rev}.")]
    if stamp.random_init:
        blocks.append(
            Banner(
                "random-init models in this run: "
                + "; ".join(stamp.random_init)
                + ". This run's numbers exercise the code "
                "path only and say nothing about the method; do not compare them with the paper."
            )
        )
    return blocks


def run_section(params: dict) -> list[Block]:
    """The run's key params: loss weights, ablation and network switches, prompt, training length."""
    arch, train = params.get("arch") or {}, params.get("train") or {}
    items = [
        "loss weights: " + ", ".join(f"`omega{i}={params.get(f'omega{i}')}`" for i in range(1, 7)),
        f"feature space: `ablation.feature_space={(params.get('ablation') or {}).get('feature_space')}`; "
        f"contextual loss `loss.cx_variant={(params.get('loss') or {}).get('cx_variant')}`",
        "network: " + ", ".join(f"`arch.{k}={show(v)}`" for k, v in arch.items()),
        f"mask prompt: `{(params.get('masks') or {}).get('prompt')}`",
        "training: "
        + ", ".join(
            f"`train.{k}={show(train.get(k))}`"
            for k in ("dataset", "split", "epochs", "max_steps", "batch_size", "crop", "lr")
        ),
    ]
    return [Heading("Run"), Bullets(tuple(items))]


def training_section(data: Collected, figures: Path) -> list[Block]:
    """Final logged losses and the training curves."""
    blocks: list[Block] = [Heading("Training")]
    if data.train_summary is None and not data.curves:
        return blocks + [not_run("training", "no dvclive/train/metrics.json; the train stage has not run")]
    if data.train_summary is not None:
        terms = data.train_summary.get("train") or {}
        step = data.train_summary.get("step")
        table = Table(
            columns=list(terms),
            rows=[Row(f"last logged step {step}", {k: float(v) for k, v in terms.items()})],
            label_header="",
            bold_best=False,
            number_format="g",
        )
        blocks.append(TableBlock(table, "Mean loss terms of the last logging window (`dvclive/train/metrics.json`)."))
    if data.curves:
        path = training_curves(data.curves, figures / "training_curves.png")
        blocks.append(Figure(path, "Training curves (dvclive), against the optimiser step."))
    return blocks


def fusion_section(
    data: Collected, cfg: ReportConfig, paper: PaperReference | None, figures: Path, baselines: list[str]
) -> list[Block]:
    """Per dataset: the metric table, ours beside the paper (Tables 1–2), bar charts."""
    blocks: list[Block] = [Heading("Fusion metrics")]
    if not data.fusion:
        return blocks + [not_run("fusion metrics", "no metrics/fusion/*.json; the evaluate stage has not run")]
    blocks.append(
        Paragraph(
            "Rows are methods, columns metrics (all higher-is-better); the best method value per column is in bold, "
            "`n` is the number of images scored. Pixel baselines: " + ", ".join(f"`{b}`" for b in baselines) + "."
        )
    )
    for dataset, frame in data.fusion.items():
        table = Table.from_frame(frame, cfg.fusion_metrics, info_columns=["n"])
        blocks += [Heading(dataset, 3), TableBlock(table)]
        if paper is not None:
            blocks += fusion_beside(paper, dataset, frame, cfg.ours)
        if frame[cfg.fusion_metrics].isna().all().all():
            continue
        path = metric_bars(
            frame,
            cfg.fusion_metrics,
            figures / f"fusion_{dataset}.png",
            title=f"{dataset}: fusion metrics",
            ours=cfg.ours,
            baselines=baselines,
        )
        blocks.append(Figure(path, f"{dataset}: fusion metrics per method (ours red, pixel baselines grey)."))
    return blocks


def downstream_section(
    name: str, kind: str, records: dict[str, dict[str, dict]], cfg: ReportConfig, paper: PaperReference | None
) -> list[Block]:
    """Detection or segmentation: one table per dataset (rows = methods, columns = classes), then ours
    beside the paper (Tables 3–5)."""
    blocks: list[Block] = [Heading(name)]
    if not records:
        return blocks + [
            not_run(name.lower(), f"no metrics/{kind}/<dataset>/<method>.json; the {kind} stage has not run")
        ]
    for dataset, per_method in records.items():
        frame = detect_frame(per_method) if kind == "detect" else segment_frame(per_method)
        table = Table.from_frame(frame, list(frame.columns))
        first = next(iter(per_method.values()))
        if kind == "detect":
            caption = (
                f"AP50 per class, mAP50 and mAP50-95 of a detector trained on each method's images "
                f"({first.get('epochs')} epochs, imgsz {first.get('imgsz')}, {first.get('n_train')} train / "
                f"{first.get('n_val')} val images)."
            )
        else:
            caption = (
                f"IoU per class and mIoU of a segmentation network trained on each method's images "
                f"({first.get('epochs')} epochs, {first.get('n_train')} train / {first.get('n_test')} test images)."
            )
        blocks += [Heading(dataset, 3), TableBlock(table, caption)]
        if paper is not None:
            beside = detect_beside if kind == "detect" else segment_beside
            blocks += beside(paper, dataset, per_method, cfg.ours)
    return blocks


def ablation_section(
    root: Path, data: Collected, paper: PaperReference | None, stamp: Provenance, params: dict
) -> list[Block]:
    """Tables 6–9 (FMB): this run and the workspace's other experiments, each beside the paper's row."""
    blocks: list[Block] = [Heading("Ablation studies (Tables 6–9)")]
    if paper is None:
        return blocks + [Paragraph("Comparison with the paper switched off (`report.compare_paper: false`).")]
    if not paper.studies():
        return blocks + [Paragraph("The paper reference holds no ablation table.")]
    dataset = paper.studies()[0].rows[0].dataset
    frame = data.fusion.get(dataset)
    scores = None
    if frame is not None and TRAINED in frame.index:
        scores = {str(c): clean(frame.at[TRAINED, c]) for c in frame.columns}
    current = Run(stamp.experiment or "workspace", params, scores, current=True)
    return blocks + studies_section(paper, current, sibling_runs(root, dataset, TRAINED, exclude=stamp.experiment))


def gallery_section(root: Path, cfg: ReportConfig, out_dir: Path) -> list[Block]:
    """Labelled image rows for the chosen ids of the gallery dataset."""
    blocks: list[Block] = [Heading("Gallery")]
    data = root / "data/raw" / cfg.gallery_dataset / cfg.gallery_split
    if not (data / "ir").is_dir() or not (data / "vi").is_dir():
        where = f"data/raw/{cfg.gallery_dataset}/{cfg.gallery_split}"
        return blocks + [not_run("gallery", f"no images at {where}; set report.gallery")]
    rows, columns = build_gallery(root, cfg.gallery_dataset, cfg.gallery_split, cfg.gallery_ids, cfg.gallery_n, out_dir)
    blocks.append(Paragraph(f"{cfg.gallery_dataset}/{cfg.gallery_split}, left to right: {' | '.join(columns)}."))
    return blocks + [Figure(path, f"{cfg.gallery_dataset}/{cfg.gallery_split} {image_id}") for image_id, path in rows]


def reference_section(paper: PaperReference | None) -> list[Block]:
    """The citation and the paper's tables the report compares with."""
    if paper is None:
        return [
            Heading("Paper reference"),
            Paragraph("Comparison with the paper switched off (`report.compare_paper: false`)."),
        ]
    items = [f"Table {t.table}: {t.caption} ({', '.join(t.datasets)}; {len(t.rows)} rows)." for t in paper.tables]
    return [
        Heading("Paper reference"),
        Paragraph(paper.cite()),
        Bullets(tuple(items)),
        Paragraph(
            "Reference data: `occo/report/paper/paper.yaml`, generated from the transcription of the paper's tables "
            "(`python -m occo.report.paper.tables_csv`); every value keeps its table and row."
        ),
    ]


def build_report(
    root: Path, params: dict, *, paper_path: Path | None = None, env: Mapping[str, str] | None = None
) -> Path:
    """Write the report under ``root/reports`` (see the module docstring) and return the HTML path. ``env``: where DVC_EXP_NAME is read (default os.environ)."""
    cfg = ReportConfig.from_params(params.get("report") or {})
    paper = (load_paper(paper_path) if paper_path else load_paper()) if cfg.compare_paper else None
    data = collect(root)
    stamp = provenance(root, params, os.environ if env is None else env)
    baselines = [str(b) for b in (params.get("evaluate") or {}).get("baselines") or []]
    reports = root / REPORTS
    with atomic_dir(reports / "figures") as figures, atomic_dir(reports / "plots") as plots:
        blocks: list[Block] = [
            Heading(TITLE, 1),
            *stamp_section(stamp),
            Paragraph(
                "Written by the `report` stage from `metrics/`, `dvclive/train/` and `data/` of this workspace. "
                "Sections whose stage has not run say so."
            ),
        ]
        blocks += run_section(params)
        blocks += training_section(data, figures)
        blocks += fusion_section(data, cfg, paper, figures, baselines)
        blocks += downstream_section("Detection", "detect", data.detect, cfg, paper)
        blocks += downstream_section("Segmentation", "segment", data.segment, cfg, paper)
        blocks += ablation_section(root, data, paper, stamp, params)
        write_plot_tables(root, data, plots)
    with atomic_dir(reports / "gallery") as gallery:
        blocks += gallery_section(root, cfg, gallery)
    blocks += reference_section(paper)
    moved = {figures: reports / "figures", plots: reports / "plots", gallery: reports / "gallery"}
    blocks = [_final(b, moved) for b in blocks]
    log.info("figures in %s, dvc plots tables in %s, gallery in %s", *moved.values())
    write_text_atomic(reports / "report.md", to_markdown(blocks, base=reports))
    write_text_atomic(reports / "report.html", to_html(blocks, title=TITLE))
    log.info("wrote %s and %s", reports / "report.md", reports / "report.html")
    return reports / "report.html"


def _final(block: Block, moved: dict[Path, Path]) -> Block:
    """Point a figure written in a temporary folder at its final place."""
    if isinstance(block, Figure):
        for tmp, final in moved.items():
            if block.path.parent == tmp:
                return Figure(final / block.path.name, block.caption)
    return block
