"""Benchmark: the smoke pipeline as a user runs it, per stage, and what an experiment re-runs.

In a fresh clone of this repository's HEAD (using this checkout's .venv), it times:

1. ``make smoke``: the whole DAG offline on CPU (``dvc exp run -n smoke`` with the smoke overrides);
2. a no-op ``dvc repro`` right after it;
3. ``make smoke-omega6``: the ω6 = 100 ablation, which must re-run only train and what follows it, and
   of evaluate/detect/segment only the parts that score our fused images;
4. ``dvc exp apply smoke`` (back to the first run) then ``dvc repro``, which must re-run nothing but ``inputs``.

It prints one markdown table (seconds per stage in the full run and in the ablation) and the shares the
targets are stated in: evaluate + detect + segment of the ablation against the full run, whole smoke run,
no-op repro.

    python bench/pipeline.py                  # about 5 minutes on an idle 2-core machine
    python bench/pipeline.py --logs DIR       # only parse smoke.log, noop.log, omega6.log, apply.log in DIR
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNNING = re.compile(r"Running stage '([^']+)'")
DONE = re.compile(r"stage \S+ done in ([0-9.]+) s")
DOWNSTREAM = ("evaluate_reference", "evaluate", "detect_reference", "detect", "segment_reference", "segment")
STEPS = {
    "smoke": ["make", "-o", ".venv/.installed", "smoke"],  # -o: use this checkout's venv as installed
    "noop": [".venv/bin/dvc", "repro"],
    "omega6": ["make", "-o", ".venv/.installed", "smoke-omega6"],
    "apply": ["sh", "-c", ".venv/bin/dvc exp apply smoke && .venv/bin/dvc repro"],
}


def ran_stages(log: str) -> list[str]:
    """The stages DVC ran, in order (``Running stage 'x'`` lines)."""
    return RUNNING.findall(log)


def stage_lines(log: str, done: re.Pattern[str] = DONE) -> list[tuple[str, re.Match[str]]]:
    """``(stage, match)`` for every line of ``log`` that ``done`` matches (a ``stage … done in …`` line of
    occo.pipeline.entry), in order: each belongs to the stage DVC started last."""
    found, current = [], None
    for line in log.splitlines():
        if (m := RUNNING.search(line)) is not None:
            current = m.group(1)
        elif (m := done.search(line)) is not None and current is not None:
            found.append((current, m))
    return found


def stage_times(log: str) -> dict[str, float]:
    """Seconds per stage (:func:`stage_lines`), summed over its ``done in N s`` lines."""
    times: dict[str, float] = {}
    for stage, m in stage_lines(log):
        times[stage] = times.get(stage, 0.0) + float(m.group(1))
    return times


def step(clone: Path, logs: Path, name: str, cmd: list[str], env: dict[str, str]) -> float:
    """Run ``cmd`` in ``clone`` with its output in ``logs/<name>.log``; its wall time. Exits when it fails."""
    start = time.perf_counter()
    with (logs / f"{name}.log").open("w") as out:
        code = subprocess.call(cmd, cwd=clone, env=env, stdout=out, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    print(f"bench: {' '.join(cmd)}: {seconds:.0f} s (exit {code})", file=sys.stderr)
    if code:
        raise SystemExit(f"bench: {name} failed; see {logs / (name + '.log')}")
    return seconds


def run_steps(clone: Path, logs: Path) -> dict[str, float]:
    """Run every step in ``clone``, writing ``<step>.log`` into ``logs``; returns the wall time of each."""
    env = os.environ | {"PYTHONPATH": str(clone)}
    return {name: step(clone, logs, name, cmd, env) for name, cmd in STEPS.items()}


def report(logs: Path, walls: dict[str, float] | None) -> str:
    """The markdown table and the shares, from the four logs."""
    text = {name: (logs / f"{name}.log").read_text() for name in STEPS}
    full, ablation = stage_times(text["smoke"]), stage_times(text["omega6"])
    lines = ["| stage | full smoke run (s) | ω6 = 100 ablation (s) |", "|---|---:|---:|"]
    for stage in full:
        lines.append(
            f"| {stage} | {full[stage]:.1f} | {ablation[stage]:.1f} |"
            if stage in ablation
            else f"| {stage} | {full[stage]:.1f} | not run |"
        )
    down_full = sum(full.get(s, 0.0) for s in DOWNSTREAM)
    down_ablation = sum(ablation.get(s, 0.0) for s in DOWNSTREAM)
    lines += [
        "",
        f"- stages total: full run {sum(full.values()):.0f} s, ablation {sum(ablation.values()):.0f} s",
        f"- evaluate + detect + segment in the ablation: {down_ablation:.1f} s of {down_full:.1f} s in the full run "
        f"({100 * down_ablation / down_full:.0f} %)"
        if down_full
        else "- no downstream stage ran",
        f"- no-op `dvc repro` re-ran: {', '.join(ran_stages(text['noop'])) or 'nothing'}",
        f"- `dvc exp apply` + `dvc repro` re-ran: {', '.join(ran_stages(text['apply'])) or 'nothing'}",
    ]
    if walls:
        lines += [f"- wall time of `{' '.join(STEPS[k])}`: {v:.0f} s" for k, v in walls.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logs", type=Path, help="parse the logs in this folder instead of running")
    args = parser.parse_args(argv)
    if args.logs is not None:
        print(report(args.logs, None))
        return
    with tempfile.TemporaryDirectory(prefix="occo-bench-") as tmp:
        clone, logs = Path(tmp) / "repo", Path(tmp) / "logs"
        logs.mkdir()
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        os.symlink(REPO / ".venv", clone / ".venv")  # PYTHONPATH makes the clone's occo the one imported
        walls = run_steps(clone, logs)
        print(report(logs, walls))


if __name__ == "__main__":
    main()
