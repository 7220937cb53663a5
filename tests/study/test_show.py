"""`occo study NAME --show`: the study's table from the workspace's experiments, as the report places them."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from occo.report.paper.grid import Study, StudyRow, load_studies
from occo.report.paper.reference import load_paper
from occo.study.show import show_study
from support import REPO

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def git(root: Path, *args: str) -> str:
    identity = ["-c", "user.name=test", "-c", "user.email=test@example.org", "-c", "commit.gpgsign=false"]
    return subprocess.run(["git", "-C", str(root), *identity, *args], capture_output=True, text=True, check=True).stdout


def workspace(tmp_path: Path) -> tuple[Path, dict]:
    root = tmp_path / "ws"
    root.mkdir()
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    (root / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "params.yaml")
    git(root, "commit", "-qm", "baseline")
    return root, params


def experiment(root: Path, name: str, params: dict, scores: dict | None, dataset: str = "FMB") -> None:
    """An experiment of HEAD as DVC stores it: a commit with its params and metrics, under refs/exps."""
    base = git(root, "rev-parse", "HEAD").strip()
    git(root, "checkout", "-q", "--detach")
    (root / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    files = ["params.yaml"]
    if scores is not None:
        path = root / "metrics/fusion" / f"{dataset}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"occo": scores}), encoding="utf-8")
        files.append(str(path.relative_to(root)))
    git(root, "add", *files)
    git(root, "commit", "-qm", name)
    git(root, "update-ref", f"refs/exps/{base[:2]}/{base[2:]}/{name}", git(root, "rev-parse", "HEAD").strip())
    git(root, "checkout", "-q", "-f", "main")
    shutil.rmtree(root / "metrics", ignore_errors=True)


def test_a_paper_study_beside_the_paper(tmp_path: Path) -> None:
    root, params = workspace(tmp_path)
    experiment(root, "table7-w6-100", params | {"omega6": 100}, {"EN": 6.5, "SF": 12.0, "AG": 4.0, "CC": 0.6})
    experiment(root, "table6-w1-0", params | {"omega1": 1, "omega2": 0}, {"EN": 7.0})  # another study
    paper = load_paper()
    text = show_study(load_studies().get("table7"), paper, root)
    assert "| table7-w6-100 | 6.500 | 12.000 | 4.000 | 0.600 |" in text
    assert "| *100 (paper, Table 7)* | *6.870* | *13.314* | *4.723* | *0.623* |" in text
    assert "| *table7-w6-100 − paper* | *-0.370* |" in text
    assert "table6-w1-0" not in text
    assert "No run here yet on the rows of table7-w6-0.1, table7-w6-1, table7-w6-10 (`occo study table7" in text

    # the workspace joins when it has scores of its own; with the paper's settings it is every study's reference row
    (root / "metrics/fusion").mkdir(parents=True)
    (root / "metrics/fusion/FMB.json").write_text(json.dumps({"occo": {"EN": 7.1}}), encoding="utf-8")
    text = show_study(load_studies().get("table7"), paper, root)
    assert "| workspace (this run) | **7.100** |" in text and "| *10 (paper, Table 7)* |" in text
    assert "rows of table7-w6-0.1, table7-w6-1 (" in text  # the workspace is on row 10


def test_a_variant_run_sits_beside_the_row_it_aims_at_and_says_how_it_differs(tmp_path: Path) -> None:
    """Smoke-size runs differ from the paper's setup (a variant in the report): the study's view still sets each
    beside the printed row of the study row it sets, and names the params it differs in."""
    root, params = workspace(tmp_path)
    short = params | {"omega6": 100, "train": {**params["train"], "max_steps": 10}}
    experiment(root, "table7-w6-100", short, {"EN": 6.5, "SF": 12.0, "AG": 4.0, "CC": 0.6})
    text = show_study(load_studies().get("table7"), load_paper(), root)
    assert "| table7-w6-100 | 6.500 | 12.000 | 4.000 | 0.600 |\n| *100 (paper, Table 7)* |" in text
    assert "`table7-w6-100` differs from the paper's settings in `train.max_steps=10`: a variant" in text
    assert "rows of table7-w6-0.1, table7-w6-1, table7-w6-10 (" in text


def test_a_study_without_a_paper_table_lists_its_runs(tmp_path: Path) -> None:
    root, params = workspace(tmp_path)
    experiment(root, "long-crops", params | {"train": {**params["train"], "crop": 128}}, {"EN": 6.0}, "MSRS")
    experiment(root, "other", params, {"EN": 5.0}, "MSRS")
    study = Study("crops", "", "crop size", "MSRS", ("train.crop",), (StudyRow("c128", {"train.crop": 128}),), None)
    text = show_study(study, load_paper(), root)
    assert "| long-crops (c128) | **6.000** |" in text and "other" not in text
    assert "The paper prints no table for this study." in text and "No run here yet" not in text
