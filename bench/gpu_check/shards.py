"""Step 10: the fuse stage sharded over two GPUs (two torchrun ranks) writes what one process writes.

On a synthetic test split (32 pairs at 640x480) and a random-init checkpoint of the configured network,
``stages/fuse.py`` runs once in one process and once under ``torchrun --standalone --nproc-per-node 2``
(rank r fuses pairs r, r+2, ... on ``cuda:r``; occo/pipeline/shard.py). PASS when every fused PNG is the
same, byte for byte; the wall times of both (start-up included) are reported. It needs more than one GPU:
on one it says "skipped: 1 GPU"; ``tests/test_gpu_check_queue.py`` runs it on the CPU with two fake GPUs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import yaml

from bench.gpu_check.context import FAIL, PASS, REPO, SKIP, Context, Row

NAME = "10 shards: fuse on 2 GPUs"
FUSED = Path("data/fused/occo/synthetic/test")


def workspace(ctx: Context, root: Path, device: str) -> Path:
    """A root with a synthetic test split, a random-init checkpoint of ``ctx``'s network and params fusing it."""
    from occo.data import make_synthetic
    from occo.nn import build_model, save_checkpoint

    height, width = ctx.pick((480, 640), (48, 64))
    n = ctx.pick(32, 4)
    make_synthetic(root / "data/raw/synthetic", n_train=0, n_test=n, height=height, width=width)
    (root / "data/raw/INDEX.json").write_text(json.dumps({"synthetic": {"test": n}}), encoding="utf-8")
    params = ctx.load_params()
    save_checkpoint(root / "models/occo.pt", build_model(params.arch, seed=0).eval(), params.arch)
    raw = yaml.safe_load(ctx.params.read_text(encoding="utf-8"))
    raw["fuse"].update(datasets=["synthetic/test"], device=device)
    (root / "params.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    return root


def timed(command: list[str], root: Path) -> float:
    """Seconds ``command`` (a fuse run on ``root``) took; CalledProcessError with its output when it fails."""
    env = {k: v for k, v in os.environ.items() if k not in ("OCCO_PROCS", "RANK", "WORLD_SIZE", "LOCAL_RANK")}
    start = time.perf_counter()
    args = [str(REPO / "stages/fuse.py"), "--params", str(root / "params.yaml"), "--root", str(root)]
    subprocess.run([*command, *args], env=env | {"PYTHONPATH": str(REPO)}, check=True, capture_output=True)
    return time.perf_counter() - start


def check(ctx: Context) -> Iterator[Row]:
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count < 2:
        yield Row(NAME, SKIP, f"skipped: {count} GPU")
        return
    device = ctx.pick("auto", "cpu")  # auto under torchrun: cuda:LOCAL_RANK
    one = workspace(ctx, ctx.work / "shards-one", device)
    two = workspace(ctx, ctx.work / "shards-two", device)
    single = timed([sys.executable], one)
    ranks = timed([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"], two)
    names = sorted(p.name for p in (one / FUSED).iterdir())
    differ = [name for name in names if (one / FUSED / name).read_bytes() != (two / FUSED / name).read_bytes()]
    missing = sorted(set(names) ^ {p.name for p in (two / FUSED).iterdir()})
    problems = [f"{len(differ)} of {len(names)} fused images differ"] if differ else []
    problems += [f"only one run wrote {', '.join(missing[:3])}"] if missing else []
    summary = (
        f"{len(names)} pairs; 1 process {single:.1f} s, 2 torchrun ranks {ranks:.1f} s (x{single / ranks:.2f}, "
        f"start-up included); {'outputs identical' if not problems else 'outputs not identical'}"
    )
    figures = {"single_s": single, "ranks_s": ranks, "pairs": len(names)}
    yield Row(NAME, FAIL if problems else PASS, "; ".join([*problems, summary]), figures)
