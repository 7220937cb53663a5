"""Fig. 20 (§4.5) in the report: the RFN-Nest runs of the workspace placed by their params, their fused images
side by side, their metrics in one table; RFN-Nest runs sit in none of Tables 6-9."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from occo.config import as_dict, validate_params
from occo.report.build import build_report
from occo.report.paper.figure20 import FIG20, panel_of, trained_on
from occo.report.paper.reference import load_paper
from occo.report.paper.studies import classify

RFN = {"arch": {"name": "rfn_nest"}}


def _git(root: Path, *args: str, stdin: bytes | None = None, env: dict | None = None) -> str:
    cmd = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.org", "-c", "commit.gpgsign=false"]
    done = subprocess.run([*cmd, *args], input=stdin, capture_output=True, check=True, env=env)
    return done.stdout.decode().strip()


def _experiment(root: Path, name: str, files: dict[str, bytes]) -> None:
    """Commit ``files`` on top of HEAD as DVC stores an experiment (refs/exps/...), leaving the workspace alone."""
    import os

    env = {**os.environ, "GIT_INDEX_FILE": str(root / ".git" / f"index-{name}")}
    _git(root, "read-tree", "HEAD", env=env)
    for path, content in files.items():
        blob = _git(root, "hash-object", "-w", "--stdin", stdin=content)
        _git(root, "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=env)
    tree = _git(root, "write-tree", env=env)
    head = _git(root, "rev-parse", "HEAD")
    commit = _git(root, "commit-tree", tree, "-p", head, "-m", name)
    _git(root, "update-ref", f"refs/exps/{head[:2]}/{head[2:]}/{name}", commit)


def test_panels_follow_network_stage_and_loss_terms():
    assert panel_of({}) is None and panel_of({"loss": {"terms": ["rfn"]}}) is None  # FIFN
    assert panel_of({**RFN, "train": {"stage": "published"}}) == "a"
    assert panel_of({**RFN, "loss": {"terms": ["rfn"]}}) == "b"
    assert panel_of({**RFN, "loss": {"terms": ["ccl", "rfn"]}, "train": {"stage": "both"}}) == "c"
    assert panel_of({**RFN, "loss": {"terms": ["occo"]}}) is None  # RFN-Nest with OCCO's loss: not in Fig. 20
    assert trained_on({**RFN, "train": {"stage": "published"}}) == "KAIST (published)"
    assert trained_on({"train": {"dataset": "MSRS", "split": "train", "epochs": 20, "max_steps": None}}) == (
        "MSRS/train, 20 epochs"
    )


def test_rfn_nest_runs_sit_in_no_ablation_study():
    paper = load_paper()
    rfn = as_dict(validate_params({"arch": {"name": "rfn_nest"}, "loss": {"terms": ["rfn", "ccl"]}}))
    assert classify(rfn, paper) == []
    assert len(classify(as_dict(validate_params({})), paper)) == 4  # the paper's configuration: every study


def _png(value: int) -> bytes:
    buf = __import__("io").BytesIO()
    Image.fromarray(np.full((24, 32, 3), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def fig20_params(params: dict) -> dict:
    changes = {
        "arch": {"name": "rfn_nest"},
        "loss": {"terms": ["rfn", "ccl"]},
        "train": {"dataset": "synthetic", "epochs": 1, "stage": "both"},
        "report": {
            "gallery": {"dataset": "synthetic", "split": "test", "ids": [], "n": 2},
            "fig20_gallery": {"dataset": "synthetic", "split": "test", "ids": [], "n": 2},
            "fig20_datasets": ["synthetic"],
        },
    }
    return as_dict(validate_params({**params, **changes}))


def test_report_shows_the_workspace_rfn_nest_runs_as_fig20(workspace: Path, fig20_params: dict) -> None:
    _git(workspace, "init", "-q", "-b", "main")
    (workspace / "params.yaml").write_text(yaml.safe_dump(fig20_params))
    _git(workspace, "add", "params.yaml")
    _git(workspace, "commit", "-q", "-m", "baseline")
    public = {**fig20_params, "train": {**fig20_params["train"], "stage": "published"}}
    _experiment(
        workspace,
        "fig20-a",
        {
            "params.yaml": yaml.safe_dump(public).encode(),
            "metrics/fusion/synthetic.json": json.dumps({"occo": {"EN": 5.5, "SF": 9.0, "n": 3}}).encode(),
            "metrics/headline.json": json.dumps({"synthetic.segment.miou": 0.25}).encode(),
            f"{FIG20.as_posix()}/run.json": json.dumps(
                {"panel": "a", "dataset": "synthetic", "split": "test"}
            ).encode(),
            f"{FIG20.as_posix()}/syn_000.png": _png(40),
        },
    )
    cfg = validate_params(fig20_params)
    html = build_report(workspace, cfg, env={"DVC_EXP_NAME": "fig20-c"})
    md = (workspace / "reports/report.md").read_text()
    section = md[md.index("Fig. 20") :]
    assert "`fig20-a` (a), `fig20-c` (c)" in section
    assert "infrared | visible | (a) fig20-a | (c) fig20-c" in section
    assert "| (a) fig20-a | 3 | 5.5000 | 9.0000" in section.replace("**", "")  # n, EN, SF of the sibling's run
    assert "synthetic mIoU" in section and "0.2500" in section and "0.5000" in section  # sibling's and ours
    assert "KAIST (published)" in section and "synthetic/train, 1 epochs, auto-encoder too" in section
    run = json.loads((workspace / FIG20 / "run.json").read_text())
    assert run == {"panel": "c", "dataset": "synthetic", "split": "test", "ids": ["syn_000", "syn_001"]}
    assert sorted(p.name for p in (workspace / FIG20).glob("*.png")) == ["syn_000.png", "syn_001.png"]
    row = np.asarray(Image.open(workspace / "reports/gallery/fig20_synthetic_test_syn_001.png"))
    assert row.shape[1] > 4 * 200  # four tiles: infrared, visible, (a) absent for this id, (c)
    assert "data:image/png;base64" in html.read_text()


def test_a_fifn_run_without_rfn_nest_experiments_says_fig20_did_not_run(workspace: Path, params: dict) -> None:
    build_report(workspace, validate_params(params), env={})
    md = (workspace / "reports/report.md").read_text()
    assert "Not run: no RFN-Nest run (`arch.name: rfn_nest`)" in md
    assert json.loads((workspace / FIG20 / "run.json").read_text())["panel"] is None
    assert not list((workspace / FIG20).glob("*.png"))
