"""`occo study`: the grids as `dvc exp run --queue` lines, refusals in one line, and DVC's queue with two workers
on two (fake) GPUs in a probe workspace."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.probe_study import FAKE, make_probe, overlapping_on_one_gpu, probe_runs
from occo.cli import main
from occo.config import load_params
from occo.data.io import DataError
from occo.report.paper.grid import load_studies
from occo.study.queue import check_study, override_value, pending, queue_command, selected
from support import REPO

STUDIES = load_studies()


def test_override_values_as_dvc_reads_them() -> None:
    assert override_value(0.8) == "0.8" and override_value(1) == "1" and override_value(10.0) == "10"
    assert override_value(False) == "false" and override_value("model1") == "model1"
    assert override_value("a, b.") == '"a, b."'  # a comma would start a sweep
    assert override_value("true") == '"true"' and override_value("1e-4") == '"1e-4"'  # strings stay strings
    assert override_value(["rfn", "ccl"]) == "[rfn,ccl]"


def test_queue_lines_name_each_row() -> None:
    table9 = STUDIES.get("table9")
    assert queue_command(table9, table9.row("salient")) == [
        "dvc",
        "exp",
        "run",
        "--queue",
        "-n",
        "table9-salient",
        "-S",
        'masks.prompt="Precisely segmenting salient objects such as vehicles, pedestrians."',
    ]
    table8 = STUDIES.get("table8")
    assert queue_command(table8, table8.row("wo-ca"))[-2:] == ["-S", "arch.cross_attention=false"]
    assert [r.name for r in selected(STUDIES.get("table6"), ["w0-1", "w1-0"])] == ["w1-0", "w0-1"]
    with pytest.raises(DataError, match="no row 'w3-7'"):
        selected(STUDIES.get("table6"), ["w3-7"])


def test_every_paper_study_is_valid_params_here() -> None:
    cfg = load_params(REPO / "params.yaml")
    for name in ("table6", "table7", "table8", "table9"):
        check_study(STUDIES.get(name), cfg)


def test_a_study_whose_network_does_not_exist_yet_is_refused_in_one_line(tmp_path, monkeypatch, capsys) -> None:
    cfg = load_params(REPO / "params.yaml")
    try:
        check_study(STUDIES.get("rfn_nest"), cfg)
    except DataError as err:
        assert "needs arch.name: rfn_nest" in str(err) and "\n" not in str(err)
    else:
        pytest.skip("arch.name: rfn_nest exists: the study is no longer refused")
    for name in ("dvc.yaml", "params.yaml"):
        (tmp_path / name).write_bytes((REPO / name).read_bytes())
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(["study", "rfn_nest", "--queue"])
    assert exit_.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("occo study: study rfn_nest (§4.5, Fig. 20) needs arch.name: rfn_nest")


def test_outside_the_workspace_and_unknown_studies_are_one_line(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        main(["study", "table6", "--show"])
    assert "run it in the workspace" in capsys.readouterr().err
    for name in ("dvc.yaml", "params.yaml"):
        (tmp_path / name).write_bytes((REPO / name).read_bytes())
    with pytest.raises(SystemExit):
        main(["study", "table10"])
    assert capsys.readouterr().err.strip() == (
        "occo study: no study 'table10' (studies: table6, table7, table8, table9, rfn_nest)"
    )


def _occo(root: Path, *args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "occo.cli", *args], cwd=root, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.slow
def test_two_queue_workers_take_two_fake_gpus(tmp_path: Path) -> None:
    root = make_probe(tmp_path / "ws", seconds=4)
    bin_dir = str(Path(sys.executable).parent)  # dvc of this environment
    env = os.environ | {
        "PYTHONPATH": str(REPO),
        FAKE: "2",
        "DVC_NO_ANALYTICS": "1",
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
    }
    rows = "w1-0,w0.8-0.2,w0.2-0.8,w0-1"
    out = _occo(root, "study", "table6", "--queue", "--rows", rows, env=env)
    assert "4 experiment(s) of table6" in out
    subprocess.run([sys.executable, "-m", "dvc", "queue", "start", "-j", "2"], cwd=root, env=env, check=True)
    deadline = time.time() + 300
    while pending(root) and time.time() < deadline:
        time.sleep(2)
    runs = probe_runs(root)
    assert sorted(runs) == ["table6-w0-1", "table6-w0.2-0.8", "table6-w0.8-0.2", "table6-w1-0"]
    assert all(run["cwd"].startswith(str(root / ".dvc/tmp/exps")) for run in runs.values())  # DVC's temporary copies
    assert {run["gpu"] for run in runs.values()} == {"GPU-fake-0", "GPU-fake-1"}
    assert not overlapping_on_one_gpu(runs)
    starts = sorted(run["start"] for run in runs.values())
    assert starts[1] < min(run["end"] for run in runs.values())  # two ran at once
    assert sorted(p.name for p in (root / ".dvc/tmp/occo-gpus").glob("*.lock")) == [
        "GPU-fake-0.0.lock",
        "GPU-fake-1.0.lock",
        "choose.lock",
    ]

    # --run: rows already run are not queued again; the one new row runs, then the table is shown
    shown = _occo(root, "study", "table6", "--run", "-j", "1", "--rows", "w0-1,w0.6-0.4", env=env)
    assert sorted(probe_runs(root)) == sorted([*runs, "table6-w0.6-0.4"])
    assert "Table 6: Bias of shared information" in shown
    for name, row in (("table6-w1-0", "1:0"), ("table6-w0.6-0.4", "0.6:0.4"), ("table6-w0-1", "0:1")):
        assert f"| {name} |" in shown and f"| *{row} (paper, Table 6)* |" in shown
    assert "No run here yet on the rows of table6-w0.5-0.5, table6-w0.4-0.6 (" in shown
