"""Sharded inference: a stage's pairs split over processes, each writing its own outputs, then one merge.

A sharded stage has two phases: ``work(shard)`` processes its share of every split (the pairs in id order,
``pairs[i::n]``) and writes its outputs atomically (per-pair files, or a fragment of per-pair rows under
:func:`fragments_dir`); ``merge(n)``, once every shard is done, writes what needs all pairs (metrics, galleries)
exactly as one process writes it. The process count is a runtime knob, never a param, so changing it
re-runs nothing in DVC:

- ``OCCO_PROCS=N`` in the environment: the stage starts N copies of itself with ``--shard i/N``, waits
  for all of them, then merges;
- ``torchrun --nproc-per-node N stages/<stage>.py``: each rank works on shard ``RANK/WORLD_SIZE``, the
  ranks meet at a gloo barrier, and rank 0 merges;
- ``--shard i/n`` runs that shard's work only and ``--merge n`` the merge, for a scheduler that starts
  the processes itself.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import torch

from occo.config.types import PositiveInt
from occo.pipeline.flags import schema_flag

log = logging.getLogger(__name__)

T = TypeVar("T")

PROCS_ENV = "OCCO_PROCS"


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count``."""

    index: int = 0
    count: int = 1

    def take(self, items: Sequence[T]) -> list[T]:
        """This shard's share of ``items`` (in id order): every ``count``-th from ``index`` on."""
        return list(items[self.index :: self.count])

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


WHOLE = Shard()


@dataclass(frozen=True)
class ShardedStage:
    """A stage's two phases: ``work`` on one shard, ``merge`` of ``n`` shards' work (None: nothing to merge)."""

    work: Callable[[Shard], object]
    merge: Callable[[int], object] | None = None


def shard_flag(value: str) -> Shard:
    """argparse type of ``--shard``: ``i/n`` with ``0 <= i < n``."""
    index, _, count = value.partition("/")
    if not (index.isdigit() and count.isdigit() and int(index) < int(count)):
        raise argparse.ArgumentTypeError(f"{value!r}: give i/n with 0 <= i < n, e.g. 0/2")
    return Shard(int(index), int(count))


def count_flag(value: str) -> int:
    """argparse type of ``--merge``: a whole number of shards, at least 1."""
    return schema_flag(PositiveInt, value, "--merge")


def procs_from_env() -> int:
    """The process count of ``OCCO_PROCS`` (1 when unset); ValueError for anything but a whole number >= 1."""
    value = os.environ.get(PROCS_ENV, "1")
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{PROCS_ENV}={value!r}: give a whole number of processes, at least 1")
    return int(value)


def torchrun_shard() -> Shard | None:
    """The shard of a torchrun rank (``RANK``/``WORLD_SIZE``), or None outside torchrun."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return None
    return Shard(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]))


def fragments_dir(root: Path) -> Path:
    """Where shards leave their per-pair rows for the merge: ``.dvc/tmp/occo-shards`` in a DVC workspace
    (which DVC ignores), else ``.occo-shards``; under the root, so shards on several machines sharing it
    meet there. The merge removes what it read."""
    return root / (".dvc/tmp/occo-shards" if (root / ".dvc").is_dir() else ".occo-shards")


def fragment_path(root: Path, part: str, name: str, shard: Shard) -> Path:
    """Where ``shard`` leaves its rows of ``name`` (a dataset) for the merge of stage part ``part``."""
    return fragments_dir(root) / part / f"{name}.{shard.index}-of-{shard.count}.csv"


def read_fragments(root: Path, part: str, name: str, count: int) -> list[str]:
    """The texts the ``count`` shards left for ``name``, in shard order; ValueError naming the shards that have
    not finished."""
    paths = [fragment_path(root, part, name, Shard(i, count)) for i in range(count)]
    missing = [str(Shard(i, count)) for i, path in enumerate(paths) if not path.is_file()]
    if missing:
        raise ValueError(f"{part} {name}: shard(s) {', '.join(missing)} have not finished (no {paths[0].parent}/...)")
    return [path.read_text(encoding="utf-8") for path in paths]


def remove_fragments(root: Path, part: str, name: str, count: int) -> None:
    """Remove the fragments of ``name`` once merged, and the folders they leave empty."""
    for i in range(count):
        fragment_path(root, part, name, Shard(i, count)).unlink(missing_ok=True)
    for folder in (fragments_dir(root) / part, fragments_dir(root)):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def _spawn(child: list[str], count: int) -> None:
    """Run ``child --shard i/count`` for every i at once and wait; ValueError naming the shards that failed."""
    env = {**os.environ, PROCS_ENV: "1"}
    log.info("%s=%d: running %d shards of %s", PROCS_ENV, count, count, Path(child[1]).name)
    procs = [subprocess.Popen([*child, "--shard", str(Shard(i, count))], env=env) for i in range(count)]
    failed = [f"{i}/{count} (exit {code})" for i, code in enumerate(proc.wait() for proc in procs) if code]
    if failed:
        raise ValueError(f"shard(s) {', '.join(failed)} failed; what every shard wrote is kept, a rerun resumes")


def _torchrun(stage: ShardedStage, shard: Shard) -> None:
    """One torchrun rank: its shard's work on ``cuda:LOCAL_RANK`` (with CUDA), a gloo barrier, rank 0 merges."""
    import torch.distributed as dist

    if torch.cuda.is_available() and "LOCAL_RANK" in os.environ:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]) % torch.cuda.device_count())
    dist.init_process_group("gloo")
    try:
        stage.work(shard)
        dist.barrier()
        if shard.index == 0 and stage.merge is not None:
            stage.merge(shard.count)
    finally:
        dist.destroy_process_group()


def run_sharded(stage: ShardedStage, *, shard: Shard | None, merge: int | None, child: list[str]) -> None:
    """Run ``stage`` as the command line and environment ask: ``--merge n`` merges; ``--shard i/n`` works on
    that shard; under torchrun each rank works on its shard and rank 0 merges; ``OCCO_PROCS=N`` runs ``child``
    (this command) as N shards then merges; otherwise one process works on every pair and merges."""
    if merge is not None:
        if stage.merge is not None:
            stage.merge(merge)
        return
    if shard is not None:
        stage.work(shard)
        return
    ranks = torchrun_shard()
    if ranks is not None and ranks.count > 1:
        _torchrun(stage, ranks)
        return
    procs = procs_from_env()
    if procs == 1:
        stage.work(WHOLE)
    else:
        _spawn(child, procs)
    if stage.merge is not None:
        stage.merge(procs)
