"""Benchmark: a 4-experiment smoke study run by DVC's queue with one worker, then with two; the wall-time ratio.

In a fresh clone of this repository's HEAD (using this Python environment), it runs the smoke baseline
(``make smoke``: the whole DAG on CPU, offline) and commits it, so the queue's temporary copies restore the
baseline from the DVC cache; then ``occo study table6 --run -j 1`` on four rows of Table 6 (each re-runs
train, fuse, evaluate, detect, segment, headline and report for our images), removes those experiments and
DVC's run cache (which would restore them instead of running them), and runs the same four with ``-j 2``.
It prints the wall time of each, their ratio, the CPU count and the load average sampled while each ran
(other processes on the machine slow both).

    python -m bench.studies                # about half an hour on a busy 2-core machine
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from bench.pipeline import step

REPO = Path(__file__).resolve().parents[1]
ROWS = "w1-0,w0.8-0.2,w0.2-0.8,w0-1"
NAMES = [f"table6-{row}" for row in ROWS.split(",")]


class LoadSampler:
    """The 1-minute load average every ``every`` seconds while it runs, in a thread."""

    def __init__(self, every: float = 10.0) -> None:
        self.every, self.samples, self._stop = every, [os.getloadavg()[0]], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(os.getloadavg()[0])

    def summary(self) -> str:
        mean = sum(self.samples) / len(self.samples)
        return f"{mean:.1f} (from {min(self.samples):.1f} to {max(self.samples):.1f})"


def prepare(clone: Path, logs: Path, env: dict[str, str]) -> float:
    """Clone HEAD, run and commit the smoke baseline; its wall time."""
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    os.symlink(sys.prefix, clone / ".venv")  # this environment, as the Makefile's venv
    for key, value in (("user.name", "occo bench"), ("user.email", "bench@occo.invalid")):
        subprocess.run(["git", "config", key, value], cwd=clone, check=True)
    seconds = step(clone, logs, "smoke", ["make", "-o", ".venv/.installed", "smoke"], env)
    subprocess.run(["git", "add", "-A", ".", ":(exclude).venv"], cwd=clone, check=True)
    subprocess.run(["git", "commit", "-qm", "smoke baseline"], cwd=clone, check=True)
    return seconds


def run_study(clone: Path, logs: Path, jobs: int, env: dict[str, str]) -> tuple[float, LoadSampler]:
    """The four rows with ``jobs`` queue workers: wall time and load."""
    cmd = [sys.executable, "-m", "occo.cli", "study", "table6", "--run", "-j", str(jobs), "--rows", ROWS]
    with LoadSampler() as load:
        seconds = step(clone, logs, f"study-j{jobs}", cmd, env)
    return seconds, load


def forget(clone: Path, env: dict[str, str]) -> None:
    """Remove the study's experiments and DVC's run cache, so the next run computes them again."""
    subprocess.run([sys.executable, "-m", "dvc", "exp", "remove", *NAMES], cwd=clone, env=env, check=True)
    shutil.rmtree(clone / ".dvc" / "cache" / "runs", ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="work in this folder (kept) instead of a temporary one")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="occo-bench-studies-") as tmp:
        work = args.keep or Path(tmp)
        clone, logs = work / "repo", work / "logs"
        logs.mkdir(parents=True)
        env = os.environ | {
            "PYTHONPATH": str(clone),
            "PATH": f"{clone / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}",
            "DVC_NO_ANALYTICS": "1",
        }
        baseline = prepare(clone, logs, env)
        one, load_one = run_study(clone, logs, 1, env)
        forget(clone, env)
        two, load_two = run_study(clone, logs, 2, env)
    print(
        "\n".join(
            [
                f"4-experiment smoke study (table6 rows {ROWS}) on {os.cpu_count()} CPUs, no GPU",
                "",
                "| queue workers | wall time (s) | load average while it ran |",
                "|---:|---:|---|",
                f"| 1 | {one:.0f} | {load_one.summary()} |",
                f"| 2 | {two:.0f} | {load_two.summary()} |",
                "",
                f"- -j 2 / -j 1 wall time: {two / one:.2f} (speed-up {one / two:.2f}x)",
                f"- smoke baseline (make smoke): {baseline:.0f} s",
            ]
        )
    )


if __name__ == "__main__":
    main()
