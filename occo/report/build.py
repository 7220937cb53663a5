"""Assemble the report: collect the metrics, set them beside the paper (``paper/``), render markdown and
HTML with figures and a gallery (``render/``).

Outputs (under the repository root):
  reports/report.md            tables + relative links to the figures and gallery,
  reports/report.html          the same page, self-contained (inline CSS, images as data URIs),
  reports/figures/*.png        training curves and fusion-metric bars,
  reports/gallery/*.png        one labelled row of images per chosen id (and per Fig. 20 pair),
  reports/plots/*.csv          long tables for the `dvc plots` charts of dvc.yaml (``render/plot_tables.py``),
  reports/fig20/               this run's fused images of Fig. 20's pairs, when it is an RFN-Nest run
                               (``paper/figure20.py``), kept in git for the other runs' reports.
Every section whose inputs are absent says "not run" instead. Ours stands beside the paper's Tables
1–5 per dataset and, for the studies this workspace's experiments belong to, Tables 6–9; the
workspace's RFN-Nest runs make Fig. 20 (§4.5).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from occo.config import Gallery, Params, Report, as_dict
from occo.config.sections import NETWORK_FIELDS
from occo.data.io import atomic_dir, write_text_atomic
from occo.metrics.evaluate import common_pairs, split_by_coverage, summarise
from occo.metrics.suite import METRICS
from occo.report.collect import Collected, collect, detect_frame, fusion_frame, segment_frame
from occo.report.headline import TRAINED, headline
from occo.report.paper.comparison import detect_beside, fusion_beside, segment_beside, studies_section
from occo.report.paper.figure20 import FIG20, fig20_runs, figure20_section, write_fig20_images
from occo.report.paper.reference import PAPER_YAML, PaperReference, load_paper
from occo.report.paper.runs import Run, sibling_runs
from occo.report.provenance import Provenance, provenance
from occo.report.render.document import (
    Banner,
    Block,
    Bullets,
    Figure,
    Heading,
    Paragraph,
    TableBlock,
    to_markdown,
    yaml_scalar,
)
from occo.report.render.figures import metric_bars, training_curves
from occo.report.render.gallery import build_gallery
from occo.report.render.html import to_html
from occo.report.render.plot_tables import write_plot_tables
from occo.report.render.tables import Row, Table, clean
from occo.report.usage import data_section

log = logging.getLogger(__name__)

REPORTS = Path("reports")
TITLE = "OCCO report"


def fusion_columns(report: Report) -> list[str]:
    """The metrics the fusion tables and bars show: :data:`METRICS` for ``all``, else the listed ones."""
    return list(METRICS) if report.fusion_metrics == "all" else list(report.fusion_metrics)


def not_run(what: str, why: str) -> Paragraph:
    """The line a section shows when the stage that feeds it has not run."""
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


def run_section(cfg: Params) -> list[Block]:
    """The run's key params: loss weights, ablation and network switches, prompt, training length."""
    omegas = (cfg.omega1, cfg.omega2, cfg.omega3, cfg.omega4, cfg.omega5, cfg.omega6)
    items = [
        "loss weights: " + ", ".join(f"`omega{i}={w:g}`" for i, w in enumerate(omegas, start=1)),
        f"loss terms: `loss.terms={yaml_scalar(cfg.loss.terms)}`"
        + ("" if cfg.loss.terms == ["occo"] else f", `alpha={cfg.alpha:g}`, `beta={cfg.beta:g}`"),
        f"feature space: `ablation.feature_space={cfg.ablation.feature_space}`; "
        f"contextual loss `loss.cx_variant={cfg.loss.cx_variant}`",
        f"code: `compat={cfg.compat}` ("
        + ", ".join(f"`{k}.compat={getattr(cfg, k).compat}`" for k in ("arch", "loss", "train", "fuse"))
        + ")",
        "network: "
        + ", ".join(
            f"`arch.{k}={yaml_scalar(v)}`"
            for k, v in as_dict(cfg.arch).items()
            if k == "name" or k in NETWORK_FIELDS[cfg.arch.name]
        ),
        f"mask prompt: `{cfg.masks.prompt}`",
        "training: "
        + ", ".join(
            f"`train.{k}={yaml_scalar(getattr(cfg.train, k))}`"
            for k in ("dataset", "split", "epochs", "max_steps", "batch_size", "crop", "lr", "precision")
            + (("stage", "autoencoder_epochs") if cfg.arch.name == "rfn_nest" else ())
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
        if not terms:
            return blocks + [Paragraph("No loss logged: the run trained nothing (`train.stage: published`).")]
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
    data: Collected, report: Report, paper: PaperReference | None, figures: Path, baselines: list[str]
) -> list[Block]:
    """Per dataset: the metric table, ours beside the paper (Tables 1–2), bar charts."""
    blocks: list[Block] = [Heading("Fusion metrics")]
    if not data.fusion:
        return blocks + [not_run("fusion metrics", "no metrics/fusion/*.json; the evaluate stage has not run")]
    blocks.append(
        Paragraph(
            "Rows are methods, columns metrics (all higher-is-better); the best method value per column is in bold, "
            "`n` is the number of images scored. As in the paper, a table compares its methods on the same images: "
            "methods scored on fewer pairs than the others are named below it and compared with the rest on the "
            "pairs they all have. Pixel baselines: " + ", ".join(f"`{b}`" for b in baselines) + "."
        )
    )
    columns = fusion_columns(report)
    for dataset, everything in data.fusion.items():
        frame, blocks_left_out = fair_frame(dataset, everything, data.fusion_rows.get(dataset), columns)
        table = Table.from_frame(frame, columns, info_columns=["n"])
        blocks += [Heading(dataset, 3), TableBlock(table), *blocks_left_out]
        if paper is not None:
            blocks += fusion_beside(paper, dataset, everything, report.ours)
        if frame[columns].isna().all().all():
            continue
        path = metric_bars(
            frame,
            columns,
            figures / f"fusion_{dataset}.png",
            title=f"{dataset}: fusion metrics",
            ours=report.ours,
            baselines=baselines,
        )
        blocks.append(Figure(path, f"{dataset}: fusion metrics per method (ours red, pixel baselines grey)."))
    return blocks


def fair_frame(
    dataset: str, frame: pd.DataFrame, rows: list[dict] | None, columns: list[str]
) -> tuple[pd.DataFrame, list[Block]]:
    """The methods of ``frame`` scored on every pair (the table and bars), and the blocks that name the others
    with their counts and, from the per-image ``rows``, compare every method on the pairs they all have."""
    listed, left_out, pairs = split_by_coverage({m: {"n": frame.at[m, "n"]} for m in frame.index})
    if not left_out:
        return frame, []
    names = ", ".join(f"`{m}` ({n} of {pairs} pairs)" for m, n in left_out.items())
    blocks: list[Block] = [Paragraph(f"Left out of the table above, scored on fewer pairs than the others: {names}.")]
    common = summarise(common_pairs(rows)) if rows else {}
    if common:
        n = next(iter(common.values()))["n"]
        common_frame = fusion_frame(common, Path(f"reports/fusion/{dataset}.csv"))
        table = Table.from_frame(common_frame, columns, info_columns=["n"])
        blocks.append(TableBlock(table, f"Every method of {dataset} on the {n} pairs all of them were scored on."))
    return frame.loc[listed], blocks


def downstream_section(
    name: str,
    kind: str,
    records: dict[str, dict[str, dict]],
    ours: list[str],
    paper: PaperReference | None,
    skipped: dict[str, str] | None = None,
) -> list[Block]:
    """Detection or segmentation: one table per dataset (rows = methods, columns = classes), then ours
    beside the paper (Tables 3–5); each dataset the stage skipped (``skipped``: ``{dataset: why}``) with why."""
    blocks: list[Block] = [Heading(name)]
    blocks += [Paragraph(f"Skipped {dataset}: {why}.") for dataset, why in (skipped or {}).items()]
    if not records:
        if skipped is None:
            blocks.append(
                not_run(name.lower(), f"no metrics/{kind}/<dataset>/<method>.json; the {kind} stage has not run")
            )
        return blocks
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
            blocks += beside(paper, dataset, per_method, ours)
    return blocks


def ablation_section(
    root: Path, data: Collected, paper: PaperReference | None, stamp: Provenance, cfg: Params
) -> list[Block]:
    """Tables 6–9 (FMB): this run and the workspace's other experiments, each beside the paper's row.

    This run's params enter as params.yaml spells them (``as_dict``), the form the experiments' params
    are read from git in, so the two compare like with like.
    """
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
    current = Run(stamp.experiment or "workspace", as_dict(cfg), scores, current=True)
    siblings = sibling_runs(root, dataset, TRAINED, exclude=stamp.experiment)
    return blocks + studies_section(paper, current, siblings, cfg.evaluate.split_of(dataset))


def gallery_section(root: Path, gallery: Gallery, out_dir: Path) -> list[Block]:
    """Labelled image rows for the chosen ids of the gallery dataset."""
    blocks: list[Block] = [Heading("Gallery")]
    where = f"{gallery.dataset}/{gallery.split}"
    data = root / "data/raw" / gallery.dataset / gallery.split
    if not (data / "ir").is_dir() or not (data / "vi").is_dir():
        return blocks + [not_run("gallery", f"no images at data/raw/{where}; set report.gallery")]
    rows, columns = build_gallery(root, gallery, out_dir)
    blocks.append(Paragraph(f"{where}, left to right: {' | '.join(columns)}."))
    return blocks + [Figure(path, f"{where} {image_id}") for image_id, path in rows]


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
    root: Path, cfg: Params, *, paper_path: Path = PAPER_YAML, env: Mapping[str, str] | None = None
) -> Path:
    """Write the report under ``root/reports`` (see the module docstring) and return the HTML path.

    ``paper_path``: the paper's reference tables; ``env``: where DVC_EXP_NAME is read (default os.environ).
    """
    report = cfg.report
    paper = load_paper(paper_path) if report.compare_paper else None
    data = collect(root)
    stamp = provenance(root, cfg, os.environ if env is None else env)
    baselines = list(cfg.evaluate.baselines)
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
        blocks += data_section(cfg, data, paper)
        blocks += run_section(cfg)
        blocks += training_section(data, figures)
        blocks += fusion_section(data, report, paper, figures, baselines)
        blocks += downstream_section("Detection", "detect", data.detect, report.ours, paper, data.skipped.get("detect"))
        blocks += downstream_section(
            "Segmentation", "segment", data.segment, report.ours, paper, data.skipped.get("segment")
        )
        blocks += ablation_section(root, data, paper, stamp, cfg)
        write_plot_tables(root, data, plots)
    with atomic_dir(root / FIG20) as fig20:
        write_fig20_images(root, cfg, fig20)
    runs, notes = fig20_runs(root, cfg, stamp.experiment or "workspace", headline(data))
    with atomic_dir(reports / "gallery") as gallery:
        blocks += figure20_section(root, cfg, runs, notes, gallery, fusion_columns(report))
        blocks += gallery_section(root, report.gallery, gallery)
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
