"""What the resumable stages (train, detect, segment) share to decide between resuming and starting over.

A run's identity is a small mapping of named parts — ``params`` and one digest per group of input
files (``images``, ``masks``, ``labels``) — saved beside or inside its checkpoint. A re-run resumes
only when every part is equal; otherwise it starts over and the log names the parts that changed.

File digests hash contents, not timestamps: a resumed run must continue on exactly the bytes the
interrupted one trained on, and a DVC checkout or a copy changes mtimes without changing data (an
mtime rule would restart needlessly) while a regenerated file may keep its size (a size rule would
resume on other data). Contents are read once per run, in a thread pool (hashlib releases the GIL),
at disk or sha256 speed, whichever is lower.

Two more things a resumed run needs: dvclive rows logged after the checkpoint (by the run that was
killed) are dropped, so the resumed run does not log those steps twice; and the temporary files a
killed atomic write leaves beside a checkpoint are removed.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from occo.data.download import sha256_file
from occo.data.io import atomic_path

log = logging.getLogger(__name__)

_HASH_THREADS = 8


def digest_files(files: Mapping[str, Path]) -> str:
    """sha256 over ``key`` and content sha256 of every file, in key order (keys name the files' roles,
    e.g. ``ir/<id>``, so the digest does not depend on where the repository lives)."""
    keys = sorted(files)
    workers = min(_HASH_THREADS, os.cpu_count() or 1, max(len(keys), 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        contents = pool.map(sha256_file, (files[k] for k in keys))
        digest = hashlib.sha256()
        for key, content in zip(keys, contents):
            digest.update(f"{key}\0{content}\n".encode())
    return digest.hexdigest()


def digest_value(value: Any) -> str:
    """sha256 of ``value`` as canonical JSON (sorted keys; other objects through ``str``)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def changed_parts(saved: object, current: Mapping[str, Any]) -> list[str]:
    """Names of the parts of ``current`` that ``saved`` does not hold with the same value (all of them
    when ``saved`` is not a mapping: a checkpoint from before input fingerprints)."""
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


def trim_live_history(live_dir: Path, step: int) -> int:
    """Drop the rows after ``step`` from every dvclive metric TSV under ``live_dir`` (rewritten
    atomically); returns the number of rows dropped. A resumed run then logs those steps once."""
    dropped = 0
    for path in sorted((Path(live_dir) / "plots" / "metrics").rglob("*.tsv")):
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
            fields = list(rows[0]) if rows else []
        kept = [row for row in rows if int(row["step"]) <= step]
        if len(kept) == len(rows):
            continue
        dropped += len(rows) - len(kept)
        with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=fields, delimiter="\t")
            writer.writeheader()
            writer.writerows(kept)
    if dropped:
        log.info("%s: dropped %d metric rows logged after step %d (by the interrupted run)", live_dir, dropped, step)
    return dropped


def remove_stale_temps(path: Path) -> list[Path]:
    """Remove the temporary files that a killed atomic write of ``path`` left beside it
    (``.<name>.tmp-*`` from ``occo.data.io.atomic_path``, ``.<name>.*.tmp`` from older occo)."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    stale = sorted({*path.parent.glob(f".{path.name}.tmp-*"), *path.parent.glob(f".{path.name}.*.tmp")})
    for tmp in stale:
        tmp.unlink(missing_ok=True)
        log.info("removed %s, left by an interrupted write of %s", tmp, path)
    return stale
