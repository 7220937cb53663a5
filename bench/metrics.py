"""Benchmark: the batched torch metric suite against a per-image NumPy/SciPy implementation.

Both compute the same eleven metrics (EN, SF, AG, CC, SD, MI, VIF, Qabf, SSIM, SCD, PSNR) with the
same definitions (variant ``matlab`` or ``cddfuse``) on the same real fused/infrared/visible triples,
in one run; the script checks that every value agrees to ``--rtol`` and prints the speed ratio.
Images are decoded and converted to grey before timing: only metric computation is timed.

    python bench/metrics.py                      # 24 TNO-42 triples, CPU (and CUDA when present)
    python bench/metrics.py --batch-size 4       # batching: slower on CPU (cache), faster on CUDA
    python bench/metrics.py --triples 126 --variant cddfuse
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.metrics_numpy import metrics_cddfuse, metrics_matlab  # noqa: E402
from occo.data import load_array  # noqa: E402
from occo.device import resolve_batch_size  # noqa: E402
from occo.metrics.suite import METRICS, compute_metrics, grey_levels  # noqa: E402

NUMPY = {"matlab": metrics_matlab, "cddfuse": metrics_cddfuse}


def load_triples(ref: Path, n: int, variant: str) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """The first ``n`` (method, id) triples of the TNO-42 reference set as grey uint8 arrays."""
    triples = []
    for method in sorted(p.name for p in (ref / "fused").iterdir()):
        for fused in sorted((ref / "fused" / method).glob("*.png")):
            if len(triples) == n:
                return triples
            grey = [grey_levels(load_array(p), variant).astype(np.uint8)
                    for p in (fused, ref / "ir" / fused.name, ref / "vi" / fused.name)]
            triples.append((f"{method}/{fused.stem}", *grey))
    return triples


def run_numpy(triples, variant: str) -> tuple[float, list[dict[str, float]]]:
    fn = NUMPY[variant]
    cast = (lambda x: x) if variant == "matlab" else (lambda x: x.astype(np.float32))
    start = time.perf_counter()
    values = [fn(cast(f), cast(a), cast(b)) for _, f, a, b in triples]
    return time.perf_counter() - start, values


def run_torch(triples, variant: str, device: torch.device, batch_size: int) -> tuple[float, list[dict[str, float]]]:
    """Group same-size triples into batches; time transfer + computation + copy back."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, (_, f, _, _) in enumerate(triples):
        groups.setdefault(f.shape, []).append(i)
    values: list[dict[str, float]] = [{} for _ in triples]
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for idx in groups.values():
        for lo in range(0, len(idx), batch_size):
            chunk = idx[lo : lo + batch_size]
            f, a, b = (torch.from_numpy(np.stack([triples[i][k] for i in chunk])).to(device) for k in (1, 2, 3))
            out = compute_metrics(f, a, b, variant)
            table = torch.stack([out[m] for m in METRICS], dim=1).cpu().numpy()
            for i, row in zip(chunk, table):
                values[i] = dict(zip(METRICS, row.tolist()))
    return time.perf_counter() - start, values


def worst_error(ref: list[dict[str, float]], got: list[dict[str, float]]) -> dict[str, float]:
    """Largest relative difference per metric (NaN on both sides counts as equal)."""
    worst = {}
    for m in METRICS:
        r = np.array([v[m] for v in ref])
        g = np.array([v[m] for v in got])
        both_nan = np.isnan(r) & np.isnan(g)
        rel = np.abs(g - r) / np.maximum(np.abs(r), 1e-12)
        worst[m] = float(np.max(np.where(both_nan, 0.0, rel)))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", type=Path, default=REPO.parent / "shared/reference/tno42")
    parser.add_argument("--triples", type=int, default=24)
    parser.add_argument("--variant", choices=list(NUMPY), default="matlab")
    parser.add_argument("--batch-size", default="auto", help="'auto' (1 on CPU, 8 on CUDA) or N")
    parser.add_argument("--repeats", type=int, default=3, help="torch timing repeats (median reported)")
    parser.add_argument("--rtol", type=float, default=1e-6)
    args = parser.parse_args()
    if not (args.ref / "fused").is_dir():
        raise SystemExit(f"reference set not found: {args.ref} (pass --ref)")

    triples = load_triples(args.ref, args.triples, args.variant)
    sizes = sorted({f"{f.shape[1]}x{f.shape[0]}" for _, f, _, _ in triples})
    print(f"{len(triples)} triples from {args.ref} ({', '.join(sizes)}), variant {args.variant}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    t_np, ref = run_numpy(triples, args.variant)
    print(f"numpy per-image          : {t_np:8.2f} s  ({t_np / len(triples) * 1000:7.1f} ms/triple)")
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    failed = False
    for dev in devices:
        size = resolve_batch_size(args.batch_size, dev)
        run_torch(triples[:size], args.variant, dev, size)  # warm-up
        runs = [run_torch(triples, args.variant, dev, size) for _ in range(args.repeats)]
        t = statistics.median(r[0] for r in runs)
        worst = worst_error(ref, runs[0][1])
        bad = {m: e for m, e in worst.items() if e > args.rtol}
        failed |= bool(bad)
        print(f"torch, batch {size:2d} ({dev.type:4s}): {t:8.2f} s  ({t / len(triples) * 1000:7.1f} ms/triple)  "
              f"speed-up x{t_np / t:.1f}  worst rel. diff {max(worst.values()):.1e}"
              + (f"  ABOVE rtol: {bad}" if bad else ""))
    if failed:
        raise SystemExit(f"values differ by more than rtol={args.rtol}")


if __name__ == "__main__":
    main()
