"""dvc.yaml against the code: every stage declares each occo module its script imports, and paths that exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from support import REPO


def module_file(name: str) -> Path | None:
    """The file of an ``occo`` (or ``stages``) module: ``a/b.py`` or ``a/b/__init__.py``."""
    base = REPO.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_files(path: Path) -> set[Path]:
    """Every occo source file executed when ``path`` runs: its imports, their packages' __init__, transitively."""
    seen: set[Path] = set()
    todo = [path]
    while todo:
        file = todo.pop()
        if file in seen:
            continue
        seen.add(file)
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                if not name.startswith("occo"):
                    continue
                parts = name.split(".")
                for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__, a/b/__init__, a/b/c
                    found = module_file(".".join(parts[:i]))
                    if found is not None:
                        todo.append(found)
    return {p for p in seen if p != path}


def package_data(files: set[Path]) -> set[Path]:
    """Data files the modules read: occo/fetch/registry.yaml, occo/report/paper/paper.yaml, …, next to their module."""
    out = set()
    for file in files:
        for match in re.finditer(r'["\']([\w-]+\.(?:yaml|json))["\']', file.read_text(encoding="utf-8")):
            candidate = file.parent / match.group(1)
            if candidate.is_file():
                out.add(candidate)
    return out


@pytest.fixture(scope="module")
def stages() -> dict[str, dict]:
    """The stages of dvc.yaml as DVC resolves them (templates filled from params.yaml)."""
    from dvc.repo import Repo

    with Repo(str(REPO)) as repo:
        return {
            stage.addressing: {
                "cmd": stage.cmd,
                "deps": [Path(dep.def_path) for dep in stage.deps],
                "params": [p for dep in stage.params for p in dep.params],
            }
            for stage in repo.index.stages
        }


def _covered(file: Path, deps: list[Path]) -> bool:
    rel = file.relative_to(REPO)
    return any(rel == dep or dep in rel.parents for dep in deps)


def test_every_stage_runs_a_script_it_depends_on(stages):
    for name, stage in stages.items():
        script = re.search(r"stages/\w+\.py", stage["cmd"])
        assert script, f"{name}: {stage['cmd']}"
        assert Path(script.group(0)) in stage["deps"], f"{name} does not depend on {script.group(0)}"


def test_every_imported_module_is_a_declared_dependency(stages):
    for name, stage in stages.items():
        script = REPO / re.search(r"stages/\w+\.py", stage["cmd"]).group(0)
        files = imported_files(script)
        files |= package_data(files)
        missing = sorted(str(f.relative_to(REPO)) for f in files if not _covered(f, stage["deps"]))
        assert not missing, f"stage {name} imports but does not depend on: {', '.join(missing)}"


def test_code_dependencies_exist(stages):
    for name, stage in stages.items():
        for dep in stage["deps"]:
            if dep.parts[0] in ("occo", "stages"):
                assert (REPO / dep).exists(), f"{name}: dependency {dep} does not exist"
