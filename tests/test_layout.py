"""The codebase's shape, checked: short functions, unique public names, no private imports, thin stage scripts."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

from support import REPO

MAX_FUNCTION_LINES = 60
LIBRARY = sorted((REPO / "occo").rglob("*.py"))
STAGES = sorted((REPO / "stages").glob("*.py"))


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def test_no_function_is_over_60_lines():
    """A recipe reads top to bottom as named steps (the library and stages; tests and bench may be longer)."""
    long = [
        f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path in LIBRARY + STAGES
        for node in ast.walk(_tree(path))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, long


def test_public_names_are_unique_across_the_library():
    """One name, one thing: a top-level public function or class is defined once in occo/ (`main` of the
    command-line modules excepted)."""
    where: dict[str, list[str]] = defaultdict(list)
    for path in LIBRARY:
        for node in _tree(path).body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef) and not node.name.startswith("_"):
                where[node.name].append(str(path.relative_to(REPO)))
    assert not {name: files for name, files in where.items() if len(files) > 1 and name != "main"}


def test_no_module_imports_another_modules_private_names():
    private = [
        f"{path.relative_to(REPO)}: from {node.module} import {alias.name}"
        for path in LIBRARY + STAGES
        for node in ast.walk(_tree(path))
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("occo")
        for alias in node.names
        if alias.name.startswith("_")
    ]
    assert not private, private


@pytest.mark.parametrize("script", STAGES, ids=lambda p: p.stem)
def test_stage_scripts_are_thin(script):
    """A stage script parses params through run_stage (or run_sharded_stage) and calls the library: no logic."""
    tree = _tree(script)
    functions = [node.name for node in tree.body if isinstance(node, ast.FunctionDef)]
    assert functions == ["main"], functions
    assert "run_stage(" in script.read_text(encoding="utf-8") or "run_sharded_stage(" in script.read_text(
        encoding="utf-8"
    )
    assert len(script.read_text(encoding="utf-8").splitlines()) <= 45
