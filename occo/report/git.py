"""Read-only git queries of the workspace: its revision, DVC's experiment refs, files at a commit.

The report stage runs inside ``dvc repro`` / ``dvc exp run``, which hold DVC's repository lock, so it
asks git directly (never ``dvc``). Every query returns None when git is missing, the workspace is not
a git repository or the object does not exist: the report then shows less, and says why.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

# refs/exps/<first 2 hex of the baseline commit>/<other 38>/<experiment name> (DVC 3)
EXP_REF = re.compile(r"^refs/exps/([0-9a-f]{2})/([0-9a-f]{38})/(.+)$")


def _stdout(root: Path, args: tuple[str, ...], *, text: bool) -> str | bytes | None:
    """``git -C root <args>``'s stdout (text or bytes), or None when git cannot answer."""
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=text, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def git(root: Path, *args: str) -> str | None:
    """``git -C root <args>``'s stdout, or None when git cannot answer."""
    return _stdout(root, args, text=True)


def revision(root: Path) -> str | None:
    """The full commit id of HEAD."""
    out = git(root, "rev-parse", "--verify", "HEAD")
    return out.strip() if out else None


@dataclass(frozen=True)
class ExperimentRef:
    """A DVC experiment stored in git: its name, its commit and the baseline commit it was run from."""

    name: str
    commit: str
    baseline: str


def experiment_refs(root: Path) -> list[ExperimentRef] | None:
    """Every experiment under ``refs/exps`` (sorted by name); None when git cannot be asked."""
    out = git(root, "for-each-ref", "--format=%(refname) %(objectname)", "refs/exps/")
    if out is None:
        return None
    found = []
    for line in out.splitlines():
        ref, _, commit = line.partition(" ")
        if match := EXP_REF.match(ref):
            found.append(ExperimentRef(match.group(3), commit, match.group(1) + match.group(2)))
    return sorted(found, key=lambda e: (e.name, e.commit))


def file_at(root: Path, commit: str, path: str) -> str | None:
    """The text of ``path`` (relative to ``root``) at ``commit``; None when it is not there."""
    return git(root, "show", f"{commit}:./{path}")


def git_bytes(root: Path, commit: str, path: str) -> bytes | None:
    """The bytes of ``path`` (relative to ``root``) at ``commit`` (an image, say); None when it is not there."""
    return _stdout(root, ("show", f"{commit}:./{path}"), text=False)
