"""Step 9: two DVC queue workers on two GPUs, each experiment's stage on a GPU of its own through ``device: auto``.

In a probe workspace (``bench/probe_study.py``: one stage that resolves ``auto`` and keeps its GPU busy with
matrix products), ``occo study table6 --queue`` queues two rows and ``dvc queue start -j 2`` runs them. PASS
when both ran, at the same time, on two different GPUs (by UUID). It needs more than one GPU: on one it says
"skipped: 1 GPU".
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

from bench.gpu_check.context import FAIL, PASS, REPO, SKIP, Context, Row
from bench.probe_study import make_probe, overlapping_on_one_gpu, probe_runs

NAME = "9 queue: 2 workers on 2 GPUs"
ROWS = ("w1-0", "w0-1")


def check(ctx: Context) -> Iterator[Row]:
    import torch

    from occo.study.queue import pending

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count < 2:
        yield Row(NAME, SKIP, f"skipped: {count} GPU")
        return
    seconds = 10
    root = make_probe(ctx.work / "probe", seconds=seconds)
    env = os.environ | {
        "PYTHONPATH": str(REPO),
        "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}",
    }
    queue = [sys.executable, "-m", "occo.cli", "study", "table6", "--queue", "--rows", ",".join(ROWS)]
    subprocess.run(queue, cwd=root, env=env, check=True, capture_output=True)
    start = time.time()
    subprocess.run([sys.executable, "-m", "dvc", "queue", "start", "-j", "2"], cwd=root, env=env, check=True)
    while pending(root) and ctx.seconds_left() > 5:
        time.sleep(1)
    runs = probe_runs(root)
    gpus = sorted({run["gpu"] for run in runs.values()})
    together = len(runs) == 2 and max(r["start"] for r in runs.values()) < min(r["end"] for r in runs.values())
    problems = []
    if len(runs) != len(ROWS):
        problems.append(f"{len(runs)} of {len(ROWS)} experiments finished")
    if shared := overlapping_on_one_gpu(runs):
        problems.append(f"{shared[0][0]} and {shared[0][1]} ran on one GPU at once")
    if len(gpus) != len(runs) or not together:
        problems.append("the two did not run at once on two GPUs")
    devices = ", ".join(f"{name}: {run['device']}" for name, run in sorted(runs.items()))
    summary = (
        f"{count} GPUs; {devices}; {'at the same time' if together else 'one after the other'}; "
        f"{time.time() - start:.0f} s for two {seconds} s stages"
    )
    yield Row(NAME, FAIL if problems else PASS, "; ".join([*problems, summary]), {"gpus": gpus, "runs": runs})
