"""What the resumable stages (train, detect, segment) share to decide between resuming and starting over.

A run's identity is a small mapping of named parts — ``params`` and one digest per group of input
files (``images``, ``masks``, ``labels``) — saved beside or inside its checkpoint. A re-run resumes
only when every part is equal; otherwise it starts over and the log names the parts that changed.

File digests hash contents, not timestamps: a resumed run must continue on exactly the bytes the
interrupted one trained on, and a DVC checkout or a copy changes mtimes without changing data (an
mtime rule would restart needlessly) while a regenerated file may keep its size (a size rule would
resume on other data). Contents are read once per run, at disk or sha256 speed, whichever is lower
(bench/fingerprint.py measures it; docs/reliability.md).

The protocol every resumable trainer follows (train, segment): :func:`load_resume` gives the saved state
only when its identity equals this run's; :func:`rng_state` / :func:`set_rng_state` save and restore
the global RNG streams with it; dvclive rows logged after the checkpoint (by the run that was killed)
are dropped (:func:`trim_live_history`), so the resumed run does not log those steps twice; and the
temporary files a killed atomic write leaves beside a checkpoint are removed (:func:`remove_stale_temps`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from occo.data.io import DataError, read_checkpoint, sha256_file, write_text_atomic

log = logging.getLogger(__name__)


def digest_files(files: Mapping[str, Path]) -> str:
    """sha256 over ``key`` and content sha256 of every file, in key order (keys name the files' roles,
    e.g. ``ir/<id>``, so the digest does not depend on where the repository lives): one part of a run's
    identity. :func:`occo.pipeline.inputs.digest` instead describes one path on disk for a manifest."""
    digest = hashlib.sha256()
    for key in sorted(files):
        digest.update(f"{key}\0{sha256_file(files[key])}\n".encode())
    return digest.hexdigest()


def digest_value(value: Any) -> str:
    """sha256 of ``value`` as canonical JSON (sorted keys; other objects through ``str``)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def changed_parts(saved: object, current: Mapping[str, Any]) -> list[str]:
    """Names of the parts of ``current`` that ``saved`` does not hold with the same value (all of them
    when ``saved`` is not a mapping, such as a bare params hash)."""
    if not isinstance(saved, Mapping):
        return list(current)
    return [name for name, value in current.items() if saved.get(name) != value]


def change_reason(saved: object, current: Mapping[str, Any]) -> str | None:
    """None when ``saved`` equals ``current`` part by part, else why not, e.g. ``"masks changed
    (params, images unchanged)"``: the words a stage logs before starting over."""
    if not isinstance(saved, Mapping):
        return "it records no fingerprint of its params and inputs (written by an older occo)"
    changed = changed_parts(saved, current)
    if not changed:
        return None
    same = [name for name in current if name not in changed]
    return f"{', '.join(changed)} changed" + (f" ({', '.join(same)} unchanged)" if same else "")


def load_resume(path: Path, identity: Mapping[str, Any], *, remedy: str) -> dict[str, Any] | None:
    """The state saved at ``path`` when it belongs to this run (its ``fingerprint`` equals ``identity``), else
    None, with a warning naming what changed. CheckpointError (one line naming the file and ``remedy``)
    when it cannot be read; nothing in it is unpickled as code."""
    if not path.is_file():
        return None
    state = read_checkpoint(path, remedy=remedy)
    if (reason := change_reason(state.get("fingerprint"), identity)) is not None:
        log.warning("ignoring %s: %s since it was written; training from scratch", path, reason)
        return None
    return state


def rng_state(device: torch.device) -> dict[str, Any]:
    """The global RNG streams a training step may draw from (CPU, and the CUDA device's)."""
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: Mapping[str, Any], device: torch.device) -> None:
    """Restore what :func:`rng_state` saved."""
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _history_rows(path: Path) -> tuple[list[str], list[tuple[str, int]]] | None:
    """A dvclive metric TSV as (column names, [(row, step)]); None for a file without a whole header line (empty:
    a write cut short). Rows that do not parse (too few fields, no step number, no line end: a write cut short)
    are left out with a warning; DataError for a file without a step column."""
    header, *lines = path.read_text(encoding="utf-8").splitlines(keepends=True) or [""]
    if not header.endswith("\n"):
        return None
    names = header.rstrip("\r\n").split("\t")
    if "step" not in names:
        raise DataError(f"{path} has no step column, so it is not a dvclive history: delete it (or {path.parents[3]})")
    column, rows = names.index("step"), []
    for line in lines:
        fields = line.rstrip("\r\n").split("\t")
        if len(fields) == len(names) and line.endswith("\n") and fields[column].isdigit():
            rows.append((line, int(fields[column])))
        else:
            log.warning("%s: dropped an unreadable row %r (a write cut short)", path, line[:80])
    return names, rows


def trim_live_history(live_dir: Path, step: int) -> int:
    """Drop the rows after ``step`` from every dvclive metric TSV under ``live_dir`` (the other lines are
    kept byte for byte; rewritten atomically); returns the number of rows dropped. A resumed run then
    logs those steps once. A damaged file is rebuilt: unreadable rows are dropped (a write cut short is the
    last thing a killed run did), an empty one is removed (dvclive starts it again with its header)."""
    dropped = 0
    for path in sorted((Path(live_dir) / "plots" / "metrics").rglob("*.tsv")):
        if (parsed := _history_rows(path)) is None:
            log.warning("%s is empty or cut short in its header: removed, its history starts again", path)
            path.unlink()
            continue
        text = path.read_text(encoding="utf-8")
        kept = [line for line, row_step in parsed[1] if row_step <= step]
        trimmed = "".join([text.splitlines(keepends=True)[0], *kept])
        if trimmed != text:
            dropped += len(text.splitlines()) - 1 - len(kept)
            write_text_atomic(path, trimmed)
    if dropped:
        log.info("%s: dropped %d metric rows logged after step %d (by the interrupted run)", live_dir, dropped, step)
    return dropped


def rebuild_live_summary(live_dir: Path) -> dict[str, Any]:
    """Write dvclive's ``metrics.json`` under ``live_dir`` from its metric TSVs (the last value of each, and the
    last step); returns it. DVC deletes that file before a stage runs, so a resumed run with
    nothing left to train would otherwise write ``{"step": 0}``."""
    live_dir, summary, steps = Path(live_dir), {}, []
    base = live_dir / "plots" / "metrics"
    for path in sorted(base.rglob("*.tsv")):
        parsed = _history_rows(path)
        if parsed is None or not parsed[1] or path.stem not in parsed[0]:
            continue
        names, rows = parsed
        line, step = rows[-1]
        *parents, name = path.relative_to(base).with_suffix("").parts
        node = summary
        for part in parents:
            node = node.setdefault(part, {})
        node[name] = float(line.rstrip("\r\n").split("\t")[names.index(path.stem)])
        steps.append(step)
    if steps:
        summary["step"] = max(steps)
    write_text_atomic(live_dir / "metrics.json", json.dumps(summary, indent=4) + "\n")
    return summary


def remove_stale_temps(path: Path) -> list[Path]:
    """Remove the temporary files that a killed atomic write of ``path`` left beside it: ``.<name>.tmp-*``
    (``occo.data.io.atomic_path``) and ``.<name>.*.tmp``."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    stale = sorted({*path.parent.glob(f".{path.name}.tmp-*"), *path.parent.glob(f".{path.name}.*.tmp")})
    for tmp in stale:
        tmp.unlink(missing_ok=True)
        log.info("removed %s, left by an interrupted write of %s", tmp, path)
    return stale
