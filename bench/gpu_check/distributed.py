"""Step 3: ``torchrun`` with one process: NCCL starts, the training loop trains, saves and resumes on CUDA.

The check launches ``torchrun --standalone --nproc_per_node=1 -m bench.gpu_check.distributed`` twice on
the synthetic set: N steps, then 2N steps, which must resume from the checkpoint at step N (the loop
logs ``resuming from ... at step N``) and end with the checkpoint at step 2N and the final weights.
In each process an NCCL (gloo on the CPU) group of one all-reduces a tensor before training.

With ``WORLD_SIZE=1`` the loop takes its single-process path (``occo/train/loop.py``: DDP from two
processes up); NCCL cannot put two ranks on one GPU, so one GPU shows the launch, NCCL itself and
save/resume, not DistributedDataParallel (tests/train/test_ddp.py covers that on the CPU with gloo).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.distributed as dist
import yaml

from bench.gpu_check.context import FAIL, PASS, REPO, Context, Row
from occo.config import as_dict, load_params, override
from occo.data import make_synthetic, write_text_atomic
from occo.train import loop, train

RESUMED = re.compile(r"resum\w* from .* at step (\d+)")


def check(ctx: Context) -> Iterator[Row]:
    name = f"3 torchrun 1 process ({'gloo, CPU' if ctx.dry else 'NCCL'})"
    root = ctx.work / "torchrun"
    crop, height, width = ctx.pick((128, 240, 320), (32, 48, 64))
    steps = ctx.pick(4, 1)
    make_synthetic(root / "data/raw/synthetic", n_train=8, n_test=1, height=height, width=width, seed=0)
    train = {
        "dataset": "synthetic",
        "split": "train",
        "crop": crop,
        "batch_size": 12,
        "epochs": 100,
        "max_steps": None,
        "num_workers": ctx.pick(2, 0),
        "checkpoint_every": steps,
        "log_every": 1,
        "compile": False,
    }
    params = override(ctx.load_params(), {f"train.{k}": v for k, v in train.items()})
    write_text_atomic(root / "params.yaml", yaml.safe_dump(as_dict(params), sort_keys=False))
    first = launch(ctx, root, steps)
    second = launch(ctx, root, 2 * steps)
    problems = [
        f"{label}: {p}"
        for label, run, want in (("run 1", first, None), ("run 2", second, steps))
        for p in run_problems(run, want, steps if want is None else 2 * steps)
    ]
    summary = (
        f"batch 12 x {crop}x{crop}, {'narrow' if ctx.dry else 'full'} network on {ctx.device}: "
        f"{first.get('backend')} all-reduce {'ok' if first.get('all_reduce') else 'failed'}; "
        f"{steps} step(s) in {first.get('seconds', float('nan')):.1f} s, checkpoint at step "
        f"{first.get('checkpoint_step')}; relaunched: resumed at step {second.get('resumed_from')}, "
        f"checkpoint at step {second.get('checkpoint_step')}; WORLD_SIZE=1 is the loop's single-process path"
    )
    if problems:
        summary = "; ".join(problems) + " — " + summary
    yield Row(
        name,
        FAIL if problems else PASS,
        summary,
        {"seconds_first": first.get("seconds"), "seconds_resumed": second.get("seconds")},
    )


def run_problems(run: dict, resumed_from: int | None, checkpoint_step: int) -> list[str]:
    """What went wrong in one launch: its exit, the all-reduce, where it resumed and what it saved."""
    if run.get("error"):
        return [run["error"]]
    found = []
    if not run.get("all_reduce"):
        found.append(f"{run.get('backend')} all-reduce gave a wrong sum")
    if run.get("resumed_from") != resumed_from:
        found.append(f"resumed from step {run.get('resumed_from')}, expected {resumed_from}")
    if run.get("checkpoint_step") != checkpoint_step:
        found.append(f"checkpoint at step {run.get('checkpoint_step')}, expected {checkpoint_step}")
    if not run.get("final"):
        found.append(f"no final weights {loop.FINAL}")
    return found


def launch(ctx: Context, root: Path, steps: int) -> dict:
    """One ``torchrun`` launch of :func:`main`; its result, or ``{"error": ...}``. SIGTERM at the deadline
    lets torchrun stop its worker (which runs in a session of its own), SIGKILL 10 s later."""
    result = root / f"result_{steps}.json"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nnodes=1",
        "--nproc_per_node=1",
        "-m",
        "bench.gpu_check.distributed",
        "--root",
        str(root),
        "--steps",
        str(steps),
        "--device",
        ctx.device,
        "--result",
        str(result),
    ]
    proc = subprocess.Popen(cmd, cwd=REPO)
    try:
        code = proc.wait(timeout=max(ctx.seconds_left() - 15, 1))
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        return {"error": f"torchrun ({steps} steps) did not finish before the check's time limit"}
    if code != 0:
        return {"error": f"torchrun ({steps} steps) exited with {code}"}
    return json.loads(result.read_text(encoding="utf-8"))


class ResumeLog(logging.Handler):
    """Keeps the step the training loop says it resumes from."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.step: int | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if match := RESUMED.search(record.getMessage()):
            self.step = int(match.group(1))


def main(argv: list[str] | None = None) -> None:
    """The torchrun worker: a one-process group all-reduces, then ``occo.train.train`` runs ``--steps`` steps."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--device", required=True)
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    world = int(os.environ["WORLD_SIZE"])
    backend = "nccl" if args.device == "cuda" else "gloo"
    if args.device == "cuda":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group(backend)
    ones = torch.ones(1, device=args.device)
    dist.all_reduce(ones)
    all_reduce = float(ones) == world
    dist.destroy_process_group()

    resume = ResumeLog()
    logging.getLogger(loop.__name__).addHandler(resume)
    params = load_params(args.root / "params.yaml")
    start = time.perf_counter()
    final = train(params, args.root, max_steps=args.steps, device=args.device)
    seconds = time.perf_counter() - start
    checkpoint = torch.load(args.root / loop.CHECKPOINT, map_location="cpu", weights_only=True)
    write_text_atomic(
        args.result,
        json.dumps(
            {
                "backend": backend,
                "world_size": world,
                "all_reduce": all_reduce,
                "resumed_from": resume.step,
                "checkpoint_step": int(checkpoint["step"]),
                "final": final.is_file(),
                "seconds": seconds,
            }
        )
        + "\n",
    )


if __name__ == "__main__":
    main()
