"""Benchmark: `occo evaluate` against a per-image NumPy/SciPy evaluator, both as whole commands.

Both score the same folder of real fused TNO-42 images (full size) against their sources — folders
in, JSON out, decoding and interpreter start-up included — in one run, back to back, for a few
rounds. The script checks that every per-image value agrees to ``--rtol`` and prints, per round
and as medians, the wall time per image, the CPU time per image and the speed ratio.
``bench/metrics_numpy.py`` is the baseline: the field's way of writing these metrics (one image at
a time, full 2-D convolutions), checked against the same MATLAB and Python reference values.

    python bench/metrics.py                               # DenseFuse's 42 images, matlab variant, 3 rounds
    python bench/metrics.py --method SeAFusion --variant cddfuse --rounds 1
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from occo.metrics.suite import METRICS  # noqa: E402


def timed(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd`` with the repository first on PYTHONPATH; return its wall and CPU (user + sys) seconds."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        cmd, env=env, cwd=REPO, capture_output=True, text=True
    )  # cwd: `python -c` imports from it first
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def worst_error(ours: pd.DataFrame, baseline: dict[str, dict[str, float]]) -> dict[str, float]:
    """Largest relative difference per metric over the images (NaN on both sides counts as equal)."""
    worst = {}
    for m in METRICS:
        got = ours[m].to_numpy()
        ref = np.array([baseline[i][m] for i in ours["id"]])
        rel = np.abs(got - ref) / np.maximum(np.abs(ref), 1e-12)
        worst[m] = float(np.max(np.where(np.isnan(got) & np.isnan(ref), 0.0, rel)))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", type=Path, default=REPO.parent / "shared/reference/tno42")
    parser.add_argument("--method", default="DenseFuse", help="folder of fused images under <ref>/fused/")
    parser.add_argument("--variant", choices=("matlab", "cddfuse"), default="matlab")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of both commands (medians reported)")
    parser.add_argument("--rtol", type=float, default=1e-6)
    args = parser.parse_args()
    ir, vi, fused = args.ref / "ir", args.ref / "vi", args.ref / "fused" / args.method
    if not fused.is_dir():
        raise SystemExit(f"reference set not found: {fused} (pass --ref / --method)")
    n = len([p for p in fused.iterdir() if p.suffix == ".png"])

    with tempfile.TemporaryDirectory() as tmp:
        ours_json, base_json = Path(tmp) / "occo.json", Path(tmp) / "numpy.json"
        ours = [
            sys.executable,
            "-c",
            "from occo.cli import main; main()",
            "evaluate",
            "--ir",
            str(ir),
            "--vi",
            str(vi),
            "--fused",
            str(fused),
            "--variant",
            args.variant,
            "--out",
            str(ours_json),
        ]
        base = [
            sys.executable,
            str(REPO / "bench" / "metrics_numpy.py"),
            "--ir",
            str(ir),
            "--vi",
            str(vi),
            "--fused",
            str(fused),
            "--variant",
            args.variant,
            "--out",
            str(base_json),
        ]
        print(
            f"{n} {args.method} images of {args.ref} ({args.variant}), {os.cpu_count()} CPUs, "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        print("| round | occo evaluate s/image (CPU) | NumPy/SciPy s/image (CPU) | ratio wall | ratio CPU | load |")
        print("|---:|---:|---:|---:|---:|---:|")
        rows = []
        for r in range(args.rounds):
            (w_o, c_o), (w_b, c_b) = timed(ours), timed(base)
            rows.append((w_o, c_o, w_b, c_b))
            print(
                f"| {r + 1} | {w_o / n:.3f} ({c_o / n:.3f}) | {w_b / n:.3f} ({c_b / n:.3f}) | "
                f"{w_b / w_o:.1f} | {c_b / c_o:.1f} | {os.getloadavg()[0]:.1f} |"
            )
        per_image = pd.read_csv(ours_json.with_suffix(".csv"), dtype={"id": str})
        worst = worst_error(per_image, json.loads(base_json.read_text(encoding="utf-8"))["per_image"])
    w_o, _, w_b, _ = (statistics.median(col) for col in zip(*rows))
    wall_ratio = statistics.median(wb / wo for wo, _, wb, _ in rows)
    cpu_ratio = statistics.median(cb / co for _, co, _, cb in rows)
    print(
        f"median of {len(rows)}: occo evaluate {w_o / n:.3f} s/image, NumPy/SciPy {w_b / n:.3f} s/image, "
        f"ratio x{wall_ratio:.1f} wall, x{cpu_ratio:.1f} CPU"
    )
    print("worst relative difference per metric: " + ", ".join(f"{m} {e:.0e}" for m, e in worst.items()))
    bad = {m: e for m, e in worst.items() if e > args.rtol}
    if bad:
        raise SystemExit(f"values differ by more than rtol={args.rtol}: {bad}")


if __name__ == "__main__":
    main()
