"""A study's table from the workspace's experiments: ours beside the paper's rows, as the report shows it.

The runs are the workspace (its params.yaml and ``metrics/fusion/<dataset>.json``, when it has scores) and
every DVC experiment of HEAD, read from git (``occo.report.paper.runs``); the report's classifier places each
in the paper's table (``occo.report.paper.studies``) and its study table renders it
(``occo.report.paper.comparison``). A study the paper prints no table for lists the runs of its rows.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from occo.config import as_dict, load_params
from occo.report.headline import TRAINED
from occo.report.paper.comparison import study_table
from occo.report.paper.grid import Study
from occo.report.paper.reference import PaperReference
from occo.report.paper.runs import Run, scores_of, sibling_runs
from occo.report.paper.studies import Placement, classify, same, value_at
from occo.report.render.document import Block, Paragraph, TableBlock, to_markdown
from occo.report.render.tables import Row, Table

COLUMNS = ("EN", "SF", "AG", "CC")


def workspace_run(root: Path, dataset: str) -> Run:
    """The workspace as a run: its params and our method's scores on ``dataset`` (None: not scored)."""
    params = as_dict(load_params(root / "params.yaml"))
    path = root / "metrics" / "fusion" / f"{dataset}.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        doc = {}
    return Run("workspace", params, scores_of(doc, TRAINED) if isinstance(doc, dict) else None, current=True)


def study_runs(root: Path, dataset: str) -> tuple[Run, list[Run], list[str]]:
    """The workspace run, the runs to show (the workspace only when it has scores no experiment repeats) and
    notes on experiments that could not be read."""
    current = workspace_run(root, dataset)
    siblings = sibling_runs(root, dataset, TRAINED, exclude=None)
    repeated = any(run.params == current.params and run.scores == current.scores for run in siblings.runs)
    shown = siblings.runs if current.scores is None or repeated else [current, *siblings.runs]
    return current, shown, siblings.notes


def of_row(study: Study, params: dict) -> str | None:
    """The study row whose params ``params`` set (None: none)."""
    for row in study.rows:
        if all(same(value_at(params, k), v) for k, v in row.params.items()):
            return row.name
    return None


def without_table(study: Study, runs: list[Run]) -> tuple[list[Block], set[str]]:
    """A study the paper prints no table for: each run on one of its rows with our means on its dataset; the
    blocks and the rows some run is on."""
    table = Table(columns=list(COLUMNS), digits=3, label_header="Run")
    covered = set()
    for run in runs:
        if (row := of_row(study, dict(run.params))) is not None:
            covered.add(row)
            table.rows.append(Row(f"{run.name} ({row})", {c: (run.scores or {}).get(c) for c in COLUMNS}))
    if not table.rows:
        return [Paragraph(f"No run of this workspace is on a row of {study.name} yet.")], covered
    where = f" ({study.section})" if study.section else ""
    caption = f"{study.name}{where}: `{TRAINED}` in metrics/fusion/{study.dataset}.json of each run."
    return [TableBlock(table, caption), Paragraph("The paper prints no table for this study.")], covered


def beside_its_row(study: Study, run: Run, placement: Placement) -> Placement:
    """A variant run of a study row (set up otherwise, e.g. at smoke sizes) beside the printed row of the study row
    it sets: the study's view compares each run with the paper's row it aims at, and still names how it differs
    (the report keeps variants on no printed row)."""
    name = of_row(study, dict(run.params))
    if placement.row is not None or not placement.variant or name is None:
        return placement
    aimed = next(r.paper_row for r in study.rows if r.name == name)
    return replace(placement, row=next((r for r in placement.table.rows if r.row == aimed), None))


def show_study(study: Study, paper: PaperReference, root: Path) -> str:
    """The study's table as markdown, and the rows no run is on yet."""
    current, runs, notes = study_runs(root, study.dataset)
    blocks: list[Block] = [Paragraph(f"Other experiments: {note}.") for note in notes]
    table = next((t for t in paper.studies() if t.table == study.table), None)
    if table is None:
        shown, covered = without_table(study, runs)
        blocks += shown
        missing = [r for r in study.rows if r.name not in covered]
    else:
        placed = [
            (run, beside_its_row(study, run, p))
            for run in runs
            for p in classify(run.params, paper)
            if p.table is table
        ]
        split = load_params(root / "params.yaml").evaluate.split_of(study.dataset)
        if placed:
            blocks += study_table(table, placed, current, paper.settings, split)
        else:
            blocks.append(Paragraph(f"No run of this workspace sits in Table {table.table} yet."))
        covered = {p.row.row for _, p in placed if p.row is not None}
        missing = [r for r in study.rows if r.paper_row not in covered]
    if missing:
        names = ", ".join(study.experiment(r) for r in missing)
        blocks.append(Paragraph(f"No run here yet on the rows of {names} (`occo study {study.name} --queue`)."))
    return to_markdown(blocks, base=root)
