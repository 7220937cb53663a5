"""One GPU per experiment: which of a machine's GPUs this process takes, through lock files of its workspace.

``dvc queue start -j N`` runs each queued experiment in a temporary copy of the workspace,
``<workspace>/.dvc/tmp/exps/<tmp>/`` (DVC's ``TempDirExecutor``), with the workspace's DVC cache, and sets
``DVC_ROOT`` to the workspace for its stages; the stages of every worker and those run in the workspace
itself therefore share one folder, ``<workspace>/.dvc/tmp/occo-gpus/`` (:data:`LOCK_DIR`, untracked like
the rest of ``.dvc/tmp``), found from ``DVC_ROOT`` or, without it, from the working folder
(:func:`workspace_of`). There a
process takes a GPU by holding an exclusive ``flock`` on ``<gpu uuid>.<slot>.lock``: the GPU the fewest
processes hold, the lowest index among equals, so N workers on N GPUs get one each and more workers than
GPUs share them evenly (none waits). The file stays open, and the GPU taken, until the process exits;
the kernel drops the lock then, also when the process is killed. A process that asks again gets the GPU
it holds. The choice itself runs under ``choose.lock``, so two processes never count the same free slot.
GPUs are named by their UUID, so processes that see them through different ``CUDA_VISIBLE_DEVICES`` agree.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

LOCK_DIR = Path(".dvc/tmp/occo-gpus")
QUEUE_COPY = (".dvc", "tmp", "exps")
"""Where DVC's queue puts its temporary copies of a workspace, under the workspace."""


def queued_from(folder: Path) -> Path | None:
    """The workspace ``folder`` (resolved) is a queue's temporary copy of (``<workspace>/.dvc/tmp/exps/<tmp>``), or
    None when it is no such copy."""
    return folder.parents[3] if folder.parts[-4:-1] == QUEUE_COPY else None


def workspace_of(start: Path) -> Path | None:
    """The DVC workspace a process in ``start`` works for: the nearest folder at or above it holding ``.dvc``,
    where a queue's temporary copy counts as its workspace (:func:`queued_from`); None outside a DVC repository."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / ".dvc").is_dir():
            return queued_from(folder) or folder
    return None


@dataclass(frozen=True)
class Claim:
    """The GPU a process holds: its index among the visible ones, how many other processes hold it, the lock
    file, and whether this call took it (False: the process held it already)."""

    index: int
    others: int
    lock: Path
    new: bool


def _lock_name(gpu: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", gpu)


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    import fcntl  # POSIX; resolve_device claims only there

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the lock


def holders(lock_dir: Path, gpu: str) -> dict[int, int]:
    """The held slots of ``gpu``: slot → the pid written in its file (0 if unreadable)."""
    import fcntl

    held = {}
    for path in lock_dir.glob(f"{_lock_name(gpu)}.*.lock"):
        slot = path.name.removesuffix(".lock").rsplit(".", 1)[-1]
        if not slot.isdigit():
            continue
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # taken: nobody holds it (and it is released below)
        except BlockingIOError:
            text = os.read(fd, 32).decode(errors="replace").strip()
            held[int(slot)] = int(text) if text.isdigit() else 0
        finally:
            os.close(fd)
    return held


def claim_gpu(gpus: Sequence[str], lock_dir: Path) -> Claim:
    """Take one of ``gpus`` (stable ids, in index order) for this process until it exits: the one it holds
    already, else the one the fewest processes hold (lowest index among equals). See the module docstring."""
    import fcntl

    lock_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive(lock_dir / "choose.lock"):
        held = [holders(lock_dir, gpu) for gpu in gpus]
        for index, slots in enumerate(held):
            for slot, pid in slots.items():
                if pid == os.getpid():
                    return Claim(index, len(slots) - 1, lock_dir / f"{_lock_name(gpus[index])}.{slot}.lock", False)
        index = min(range(len(gpus)), key=lambda i: len(held[i]))
        slot = next(k for k in itertools.count() if k not in held[index])
        path = lock_dir / f"{_lock_name(gpus[index])}.{slot}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # never closed: the lock lasts as long as the process
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    return Claim(index, len(held[index]), path, True)
