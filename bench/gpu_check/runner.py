"""Run the checks of :mod:`bench.gpu_check.plan`, each in its own process with its own time limit.

A check that fails or runs out of time is recorded as FAIL or TIMEOUT with a one-line reason (and
the rows it finished before); the others still run. The run stops starting checks once its total is
spent. The report goes to ``--out`` (``reports/gpu_check.md``) and to stdout; the exit status is 1
when any row failed or timed out, else 0.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from bench.gpu_check.context import FAIL, REPO, SKIP, TIMEOUT, Context, Row
from bench.gpu_check.plan import CHECKS, DRY_TOTAL_S, GPU_TOTAL_S, Check, budget_table

OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "YOLO_OFFLINE": "1",
    "YOLO_AUTOINSTALL": "0",
    "DVC_NO_ANALYTICS": "1",
}
"""The Makefile's offline settings, for a run started without make (values already set win)."""
MIN_START_S = 10
"""A check is not started with less than this left of the run's total."""
TAIL_LINES = 25


@dataclass
class Outcome:
    """What one check gave: its rows, its wall time and limit, and the end of its output when it went wrong."""

    check: Check
    rows: list[Row]
    seconds: float = 0.0
    limit: float = 0.0
    tail: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(r.status in (FAIL, TIMEOUT) for r in self.rows)


def child_env(work: Path) -> dict[str, str]:
    """This environment plus the offline settings, ultralytics' settings in ``work`` and this checkout first on
    the path."""
    env = {**OFFLINE, **os.environ}
    env.setdefault("YOLO_CONFIG_DIR", str(work / "ultralytics"))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return env


def output_lines(log: Path) -> list[str]:
    """The non-empty lines of a check's output, progress-bar redraws split apart and dropped."""
    text = log.read_text(encoding="utf-8", errors="replace") if log.is_file() else ""
    lines = [ln.strip() for ln in re.split(r"[\r\n]+", text)]
    return [ln for ln in lines if ln and not re.search(r"\d+%\|", ln)]


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the check's process group (torchrun passes it on to its worker), SIGKILL 5 s later."""
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_check(check: Check, ctx: Context, limit: float, env: dict[str, str]) -> Outcome:
    """``check`` in a fresh interpreter, killed after ``limit`` seconds; its rows, whatever happened."""
    result, log = ctx.work / f"{check.name}.json", ctx.work / f"{check.name}.log"
    result.unlink(missing_ok=True)
    name = f"{check.step} {check.name}"
    cmd = [
        sys.executable,
        "-m",
        "bench.gpu_check.worker",
        "--target",
        check.target,
        "--name",
        name,
        "--context",
        replace(ctx, deadline=time.time() + limit).to_json(),
        "--kwargs",
        json.dumps(check.kwargs),
        "--result",
        str(result),
    ]
    start = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code: int | None = proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            stop(proc)
            code = None
    seconds = time.perf_counter() - start
    rows = [Row.from_dict(r) for r in json.loads(result.read_text(encoding="utf-8"))] if result.is_file() else []
    lines = output_lines(log)
    last = f"; last output: {lines[-1][:200]}" if lines else ""
    if code is None:
        done = f" after {len(rows)} finished row(s)" if rows else ""
        rows.append(Row(name, TIMEOUT, f"no result within its {limit:.0f} s limit{done}{last}"))
    elif code != 0 and not any(r.status == FAIL for r in rows):
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
        rows.append(Row(name, FAIL, f"the process ended with {how}{last}"))
    elif not rows:
        rows.append(Row(name, FAIL, f"no result{last}"))
    outcome = Outcome(check, rows, seconds, limit)
    if outcome.failed:
        outcome.tail = lines[-TAIL_LINES:]
    return outcome


def run_all(checks: list[Check], ctx: Context, env: dict[str, str], total: float) -> list[Outcome]:
    """Every check in order, each within its limit and what is left of ``total`` seconds; progress on stdout."""
    start = time.time()
    outcomes = []
    for check in checks:
        left = total - (time.time() - start)
        if ctx.dry and not check.dry_s:
            outcome = Outcome(check, [Row(f"{check.step} {check.name}", SKIP, "needs CUDA")])
        elif left < MIN_START_S:
            outcome = Outcome(check, [Row(f"{check.step} {check.name}", SKIP, f"the run's {total:.0f} s were spent")])
        else:
            outcome = run_check(check, ctx, min(check.budget(ctx.dry), left), env)
        for row in outcome.rows:
            print(f"gpu-check: {row.status:7} {row.name} ({outcome.seconds:.0f} s): {row.summary}", flush=True)
        outcomes.append(outcome)
    return outcomes


def cuda_here() -> bool:
    """Whether torch sees a CUDA device, asked here (no CUDA context is made): when the environment check failed,
    a GPU run must not turn into a dry run."""
    import torch

    return torch.cuda.is_available()


def main(argv: list[str] | None = None) -> int:
    from bench.gpu_check.report import render
    from occo.data import write_text_atomic

    parser = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "reports/gpu_check.md", help="the report (markdown)")
    parser.add_argument("--params", type=Path, default=REPO / "params.yaml", help="params the checks start from")
    parser.add_argument("--dry-run", action="store_true", help="the CPU dry run even where CUDA is present")
    parser.add_argument(
        "--only", default="", help=f"comma-separated checks to run: {', '.join(c.name for c in CHECKS[1:])}"
    )
    args = parser.parse_args(argv)
    only = [n for n in args.only.split(",") if n]
    unknown = sorted(set(only) - {c.name for c in CHECKS[1:]})
    if unknown:
        parser.error(f"--only: unknown check(s) {', '.join(unknown)}; known: {', '.join(c.name for c in CHECKS[1:])}")
    if not args.params.is_file():
        parser.error(f"--params: {args.params} is not a file")

    print(budget_table())
    work = Path(tempfile.mkdtemp(prefix="occo-gpu-check-"))
    try:
        env = child_env(work)
        ctx = Context(device="cpu", work=work, params=args.params.resolve())
        start = time.time()
        first = run_all([CHECKS[0]], ctx, env, DRY_TOTAL_S)[0]
        info = first.rows[0].figures if not first.failed else {}
        cuda = (bool(info.get("cuda")) if info else cuda_here()) and not args.dry_run
        if not cuda:
            why = "--dry-run" if info.get("cuda") else f"no CUDA device (torch {info.get('torch', '?')})"
            print(f"gpu-check: {why}: CPU dry run of the CPU-possible checks at tiny sizes; no GPU figure", flush=True)
        ctx = replace(ctx, device="cuda" if cuda else "cpu")
        total = GPU_TOTAL_S if cuda else DRY_TOTAL_S
        checks = [c for c in CHECKS[1:] if not only or c.name in only]
        outcomes = [first, *run_all(checks, ctx, env, total - (time.time() - start))]
        text = render(outcomes, info, dry=not cuda, seconds=time.time() - start, total=total)
        write_text_atomic(args.out, text)
        print(f"\n{text}\ngpu-check: wrote {args.out}", flush=True)
        return 1 if any(o.failed for o in outcomes) else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)
