"""Several machines on one study, as docs/experiments.md says: clones of one commit share a git remote (the
experiments) and a DVC remote (their outputs); one clone shows the rows the others ran."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bench.probe_study import make_probe
from support import REPO


def _run(cwd: Path, *args: str, env: dict[str, str]) -> str:
    done = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(args)} in {cwd}: {done.stdout}{done.stderr}"
    return done.stdout


@pytest.mark.slow
def test_two_machines_run_parts_of_a_study_and_a_third_shows_it(tmp_path: Path) -> None:
    env = os.environ | {
        "PYTHONPATH": str(REPO),
        "DVC_NO_ANALYTICS": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    dvc, occo = (sys.executable, "-m", "dvc"), (sys.executable, "-m", "occo.cli")
    origin = tmp_path / "origin.git"
    _run(tmp_path, "git", "init", "-q", "--bare", str(origin), env=env)
    ws = make_probe(tmp_path / "ws", seconds=0)
    _run(ws, *dvc, "remote", "add", "-d", "storage", str(tmp_path / "dvc-remote"), env=env)
    _run(ws, "git", "commit", "-qam", "DVC remote", env=env)
    _run(ws, "git", "push", "-q", str(origin), "HEAD:refs/heads/main", env=env)

    clones = {}
    for name in ("a", "b", "c"):
        clones[name] = tmp_path / name
        _run(tmp_path, "git", "clone", "-q", "-b", "main", str(origin), name, env=env)
        for key, value in (("user.name", name), ("user.email", f"{name}@occo.invalid")):
            _run(clones[name], "git", "config", key, value, env=env)
    for name, row in (("a", "w1-0"), ("b", "w0-1")):
        _run(clones[name], *occo, "study", "table6", "--run", "-j", "1", "--rows", row, env=env)
        _run(clones[name], *dvc, "exp", "push", "origin", env=env)

    c = clones["c"]
    _run(c, *dvc, "exp", "pull", "origin", env=env)
    shown = _run(c, *occo, "study", "table6", "--show", env=env)
    assert "| table6-w1-0 |" in shown and "| table6-w0-1 |" in shown
    _run(c, *dvc, "exp", "apply", "table6-w0-1", env=env)
    assert (c / "held.txt").read_text().split()[0] == "cpu"  # the output machine b made, from the DVC remote
    assert yaml.safe_load((c / "params.yaml").read_text())["omega1"] == 0
