"""The report's tables that set ours beside the paper: Tables 1–5 per dataset, Tables 6–9 per study.

Each shows, for every row both sides have, our value, the paper's and ours − paper (italics), in the
paper's columns and unit. Paper rows we have nothing for are named below the table.
"""

from __future__ import annotations

import pandas as pd

from occo.config import Train
from occo.report.paper.beside import Pairing, beside_table, pairings
from occo.report.paper.reference import PaperReference, PaperTable
from occo.report.paper.runs import Run, Siblings, setup_differences
from occo.report.paper.studies import Placement, changes, classify, describe_changes
from occo.report.render.document import Block, Paragraph, TableBlock
from occo.report.render.tables import Row, clean


def _classes(table: PaperTable, dataset: str, metric: str) -> dict[str, str]:
    """The paper's classes of ``metric`` on ``dataset`` in print order: shown name → column key."""
    keys = dict.fromkeys(k for r in table.methods(dataset).values() for k in r.values)
    return {k.split("/", 1)[0]: k for k in keys if "/" in k and k.split("/", 1)[1] == metric}


def _left_out(table: PaperTable, dataset: str, groups: list[Pairing]) -> list[Block]:
    paired = {g.paper.row for g in groups}
    rest = [r.row for r in table.methods(dataset).values() if r.row not in paired]
    return (
        [Paragraph(f"Also in the paper's Table {table.table}, not produced here: {', '.join(rest)}.")] if rest else []
    )


def _none_paired(table: PaperTable, dataset: str, what: str) -> list[Block]:
    return [
        Paragraph(
            f"Beside the paper: none of the methods of its Table {table.table} has {what} on {dataset} "
            f"here ({', '.join(r.row for r in table.methods(dataset).values())})."
        )
    ]


def fusion_beside(paper: PaperReference, dataset: str, frame: pd.DataFrame, ours: list[str]) -> list[Block]:
    """Tables 1–2: EN, SF, AG, CC of the paper's methods we scored on ``dataset`` (n = pairs we scored)."""
    table = paper.find("fusion", dataset)
    if table is None:
        return []
    rows = table.methods(dataset)
    columns = {k: k for k in dict.fromkeys(k for r in rows.values() for k in r.values)}
    groups = pairings(rows, [str(m) for m in frame.index], ours)
    if not groups:
        return _none_paired(table, dataset, "fused images")
    values = {str(m): {c: clean(frame.at[m, c]) if c in frame.columns else None for c in columns} for m in frame.index}
    result = beside_table(values, groups, columns)
    counts = {str(m): clean(frame.at[m, "n"]) for m in frame.index} if "n" in frame.columns else {}
    result.info_columns = ["n"]
    result.rows = [Row(r.label, {"n": counts.get(r.label)} | r.values, r.kind) for r in result.rows]
    caption = (
        f"Beside the paper's Table {table.table} ({table.caption}), {dataset} columns: ours, the paper's "
        f"row, ours − paper; `n` = pairs we scored."
    )
    return [TableBlock(result, caption), *_left_out(table, dataset, groups)]


def detect_beside(paper: PaperReference, dataset: str, records: dict[str, dict], ours: list[str]) -> list[Block]:
    """Tables 4–5: AP@0.5 and AP@0.5:0.95 per class and "all", one table each."""
    table = paper.find("detect", dataset)
    if table is None:
        return []
    groups = pairings(table.methods(dataset), list(records), ours)
    if not groups:
        return _none_paired(table, dataset, "a trained detector")
    blocks: list[Block] = []
    for metric, ours_key, title in (("AP50", "ap50", "AP@0.5"), ("AP50_95", "ap50_95", "AP@0.5:0.95")):
        values = {m: dict(r[ours_key]) for m, r in records.items()}
        caption = (
            f"{title} beside the paper's Table {table.table} ({table.caption}): ours, the paper's row, ours − paper."
        )
        blocks.append(TableBlock(beside_table(values, groups, _classes(table, dataset, metric)), caption))
    return blocks + _left_out(table, dataset, groups)


def segment_beside(paper: PaperReference, dataset: str, records: dict[str, dict], ours: list[str]) -> list[Block]:
    """Table 3: IoU per class and mIoU, ours in the paper's unit (%)."""
    table = paper.find("segment", dataset)
    if table is None:
        return []
    groups = pairings(table.methods(dataset), list(records), ours)
    if not groups:
        return _none_paired(table, dataset, "a trained segmentation network")
    columns = _classes(table, dataset, "IoU") | {"mIoU": "mIoU"}
    values = {m: dict(r["iou"]) | {"mIoU": r["miou"]} for m, r in records.items()}
    scale = 100.0 if table.unit == "%" else 1.0
    return [
        TableBlock(
            beside_table(values, groups, columns, scale=scale, digits=2),
            f"IoU{' (%)' if scale != 1 else ''} beside the paper's Table {table.table} ({table.caption}): ours, "
            "the paper's row, ours − paper.",
        ),
        *_left_out(table, dataset, groups),
    ]


def _run_label(run: Run) -> str:
    return f"{run.name} (this run)" if run.current else run.name


def study_table(
    study: PaperTable, placed: list[tuple[Run, Placement]], current: Run, settings: dict, split: str
) -> list[Block]:
    """One of Tables 6–9: every run placed in it beside the printed row it reproduces (``split``: the
    split of the study's dataset this run scored)."""
    columns = {k: k for k in dict.fromkeys(k for r in study.rows for k in r.values)}
    order = {id(row): i for i, row in enumerate(study.rows)}

    def position(item: tuple[Run, Placement]) -> tuple[int, bool, str]:
        """The paper's row order (runs on no printed row last), this run first among equals, then by name."""
        run, placement = item
        return order.get(id(placement.row), len(order)), not run.current, run.name

    placed = sorted(placed, key=position)
    labels = {_run_label(run): run for run, _ in placed}
    values = {label: {c: (run.scores or {}).get(c) for c in columns} for label, run in labels.items()}
    groups: list[Pairing] = []
    for run, placement in placed:
        if placement.row is None:
            continue
        if groups and groups[-1].paper is placement.row:
            groups[-1].ours.append(_run_label(run))
        else:
            groups.append(Pairing(placement.row, [_run_label(run)]))
    result = beside_table(values, groups, columns, label_header="Run")
    result.rows += [Row(_run_label(run), values[_run_label(run)]) for run, p in placed if p.row is None]
    notes = []
    for run, placement in placed:
        if placement.row is None:
            changed = describe_changes(changes(run.params, settings))
            notes.append(f"`{run.name}` ({changed}) has no printed row in Table {study.table}.")
        if not run.current and (diff := setup_differences(run.params, current.params, set(settings))):
            shown = ", ".join(f"`{k}`" for k in diff[:6]) + (" …" if len(diff) > 6 else "")
            notes.append(f"`{run.name}` was trained or scored differently from this run: {shown}.")
    dataset = study.rows[0].dataset
    caption = (
        f"Table {study.table}: {study.caption}. Ours: `occo` in metrics/fusion/{dataset}.json of each run; "
        f"this run scored the {dataset} {split} split" + ("." if split == "test" else ", the paper its test set.")
    )
    return [TableBlock(result, caption), *(Paragraph(n) for n in notes)]


def shortened(params: dict) -> str | None:
    """How a run was trained for less than a full run (``train.max_steps`` set, or fewer ``train.epochs`` than the
    default, the authors' code's 20; the paper states none), as words; None for a full-length run."""
    train = params.get("train", {})
    full = Train().epochs
    if train.get("max_steps") is not None:
        return f"{train['max_steps']} optimiser steps (`train.max_steps={train['max_steps']}`)"
    if train.get("epochs", full) < full:
        return f"{train['epochs']} of {full} epochs (`train.epochs={train['epochs']}`)"
    return None


def studies_section(paper: PaperReference, current: Run, siblings: Siblings, split: str) -> list[Block]:
    """Tables 6–9 for the studies the workspace's runs belong to (docs/report.md says what refreshes them);
    ``split``: the split of the studies' dataset this run scored."""
    studies = paper.studies()
    dataset = studies[0].rows[0].dataset
    runs = [current, *siblings.runs]
    changed = {id(run): changes(run.params, paper.settings) for run in runs}
    placements = {id(run): classify(run.params, paper) for run in runs}
    mine, here = changed[id(current)], placements[id(current)]
    if not mine and (short := shortened(current.params)):
        status = (
            "This run has the paper's settings of the studied params (the reference row of every study), but it "
            f"trained for only {short}: its row is not the paper's experiment."
        )
    elif not mine:
        status = "This run has the paper's settings: the reference row of every study."
    elif not here:
        status = f"This run changes {describe_changes(mine)}: no single study of the paper varies these together."
    else:
        row = f"row `{here[0].row.row}`" if here[0].row else "no printed row"
        status = f"This run changes {describe_changes(mine)}: Table {here[0].table.table}, {row}."
    blocks: list[Block] = [Paragraph(status)]
    if current.scores is None:
        blocks.append(
            Paragraph(
                f"This run has no `occo` scores in metrics/fusion/{dataset}.json ({dataset} was not "
                "fused and evaluated), so its cells are empty."
            )
        )
    blocks += [Paragraph(f"Other experiments: {note}.") for note in siblings.notes]
    varied = [s for s in studies if any(changed[id(r)] and p.table is s for r in runs for p in placements[id(r)])]
    if not varied and any(not changed[id(r)] for r in runs):
        varied = studies[:1]  # only runs of the paper's configuration: beside the first study's reference row
        tables = ", ".join(str(s.table) for s in studies)
        blocks.append(
            Paragraph(
                f"The paper's configuration is the reference row of each of Tables {tables} "
                f"(shown here beside Table {varied[0].table}); a study's full table appears once this workspace holds "
                "an experiment that changes its params (docs/experiments.md)."
            )
        )
    elif not varied:
        blocks.append(Paragraph("No run of this workspace matches a study of the paper."))
    for study in varied:
        placed = [(run, p) for run in runs for p in placements[id(run)] if p.table is study]
        blocks += study_table(study, placed, current, paper.settings, split)
    return blocks
