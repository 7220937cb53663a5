"""Queue and run a study's grid as DVC experiments: ``dvc exp run --queue -n <study>-<row> -S ...`` per row, then
``dvc queue start -j N``, whose workers each run one experiment at a time in a temporary copy of the workspace
(each takes a GPU of its own through ``device: auto``, ``occo/pipeline/gpus.py``)."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from occo.config import Params, as_dict, load_params, override
from occo.data.io import DataError
from occo.report.git import experiment_refs, revision
from occo.report.paper.grid import Study, StudyRow
from occo.report.paper.studies import changes
from occo.report.render.document import yaml_scalar

log = logging.getLogger(__name__)

DVC = (sys.executable, "-m", "dvc")
"""DVC of this environment (the workers run the stages with the same Python)."""
PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_./-]*$")
POLL_S = 5.0


def override_value(value: object) -> str:
    """``value`` as ``dvc exp run -S key=value`` reads it: YAML scalars, lists in brackets, and a string in
    double quotes unless it is a plain word that YAML reads back as that string (a comma would start a sweep)."""
    if isinstance(value, list):
        return "[" + ",".join(override_value(v) for v in value) + "]"
    if isinstance(value, str):
        return value if PLAIN.match(value) and yaml.safe_load(value) == value else json.dumps(value)
    return yaml_scalar(value)


def set_flags(params: Mapping[str, object]) -> list[str]:
    """``-S key=value`` for each param."""
    return [flag for key, value in params.items() for flag in ("-S", f"{key}={override_value(value)}")]


def queue_command(study: Study, row: StudyRow) -> list[str]:
    """The ``dvc exp run --queue`` arguments that queue ``row`` under its experiment name."""
    return ["dvc", "exp", "run", "--queue", "-n", study.experiment(row), *set_flags(row.params)]


def check_study(study: Study, cfg: Params) -> None:
    """DataError in one line when the schema of this version refuses what the study needs or a row sets."""
    if study.needs:
        try:
            override(cfg, study.needs)
        except ValueError as err:
            wanted = ", ".join(f"{k}: {yaml_scalar(v)}" for k, v in study.needs.items())
            raise DataError(
                f"study {study.name} ({study.section}) needs {wanted}, which this version's params do not have "
                f"yet ({str(err).splitlines()[0].removeprefix('override ')})"
            ) from None
    for row in study.rows:
        try:
            override(cfg, row.params)
        except ValueError as err:
            raise DataError(f"study {study.name}, row {row.name}: {str(err).splitlines()[0]}") from None


def experiments_of_head(root: Path) -> set[str]:
    """Names of the experiments run from the workspace's HEAD (what ``dvc exp show`` lists)."""
    head = revision(root)
    return {ref.name for ref in experiment_refs(root) or [] if ref.baseline == head}


def pending(root: Path) -> set[str]:
    """Names of the experiments DVC's queue holds or runs now."""
    from dvc.repo import Repo  # DVC's own queue API (what `dvc queue status` prints)

    with Repo(str(root)) as repo:
        return {e["name"] for e in repo.experiments.celery_queue.status() if e["status"] in ("Queued", "Running")}


def dvc(root: Path, args: Sequence[str]) -> None:
    """Run ``dvc <args>`` in ``root``; DataError with its last line when it fails. Its output is read through a
    file: the queue workers ``dvc queue start`` leaves running inherit it, and a pipe would stay open with them."""
    with tempfile.TemporaryFile("w+") as out:
        code = subprocess.call([*DVC, *args[1:]], cwd=root, stdout=out, stderr=subprocess.STDOUT)
        out.seek(0)
        lines = out.read().strip().splitlines() or ["no output"]
    if code != 0:
        raise DataError(f"{' '.join(args)} failed: {lines[-1]}")


def selected(study: Study, rows: Sequence[str] | None) -> list[StudyRow]:
    """The rows named in ``rows`` (all when None), in the study's order."""
    if not rows:
        return list(study.rows)
    wanted = {study.row(name).name for name in rows}
    return [row for row in study.rows if row.name in wanted]


def queue_study(study: Study, root: Path, rows: Sequence[str] | None, settings: dict[str, object]) -> list[str]:
    """Queue the study's rows (``rows``: some only) that are neither experiments of HEAD nor queued already;
    returns every selected experiment name. The other params stay the workspace's."""
    cfg = load_params(root / "params.yaml")
    check_study(study, cfg)
    if other := {k: v for k, v in changes(as_dict(cfg), settings).items() if k not in study.varies}:
        shown = ", ".join(f"{k}={yaml_scalar(v)}" for k, v in other.items())
        log.warning("the workspace sets %s, not the paper's settings: these runs will sit in no paper table", shown)
    done, waiting = experiments_of_head(root), pending(root)
    names = []
    for row in selected(study, rows):
        name = study.experiment(row)
        names.append(name)
        if name in done or name in waiting:
            what = "an experiment of this commit" if name in done else "in the queue"
            log.info("%s: already %s, not queued again (dvc exp remove %s to redo it)", name, what, name)
            continue
        command = queue_command(study, row)
        dvc(root, command)
        log.info("queued %s: %s", name, " ".join(command))
    return names


def wait_for(root: Path, names: Sequence[str]) -> None:
    """Block until none of ``names`` is queued or running; log each one as it ends."""
    left = set(names) & pending(root)
    while left:
        time.sleep(POLL_S)
        now = pending(root)
        for name in sorted(left - now):
            log.info("%s: finished", name)
        left &= now


def run_study(study: Study, root: Path, rows: Sequence[str] | None, settings: dict[str, object], jobs: int) -> None:
    """Queue the rows, start ``jobs`` queue workers (``dvc queue start -j jobs``) and wait for the rows;
    DataError naming the ones that left no experiment (``dvc queue logs <name>`` says why)."""
    names = queue_study(study, root, rows, settings)
    if set(names) & pending(root):
        dvc(root, ["dvc", "queue", "start", "-j", str(jobs)])
        log.info("dvc queue start -j %d: waiting for %s", jobs, ", ".join(names))
        wait_for(root, names)
    if failed := [n for n in names if n not in experiments_of_head(root)]:
        raise DataError(f"no experiment came out of {', '.join(failed)}: dvc queue logs {failed[0]} says why")
