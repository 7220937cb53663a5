"""Benchmark: the content digest a resumable stage computes over its inputs (``occo.pipeline.resume.digest_files``).

Writes ``--files`` files of ``--kb`` KiB of random bytes (incompressible, like PNGs) to a scratch folder
and times, in one run, with the page cache warm (``--warmup`` passes first; medians of ``--repeats``):

1. ``stat`` only — name, size and mtime of every file (cheap, but blind to a same-size rewrite and
   fooled by a checkout's new mtimes): the lower bound;
2. reading every byte (``Path.read_bytes``): the I/O floor of any content digest;
3. ``digest_files``: the content digest the stages use (sha256 of every file in turn);
4. the same per-file sha256 in a pool of ``--threads`` threads (hashlib releases the GIL): the
   alternative to adopt where it pays (many cores).

Ratios are against reading (2). The default (4,880 files of 400 KiB, 1.9 GiB) is FMB's training set in
size: 1,220 pairs × (infrared, visible, two masks).

    python bench/fingerprint.py                       # about 2 GB of scratch files in $TMPDIR
    python bench/fingerprint.py --files 400 --kb 100  # a quick run
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from bench.train import measure, table  # noqa: E402
from occo.data.io import sha256_file  # noqa: E402
from occo.pipeline.resume import digest_files, digest_value  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=4880)
    parser.add_argument("--kb", type=int, default=400, help="KiB per file")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=8, help="pool size of the threaded variant")
    args = parser.parse_args()
    cpu = torch.device("cpu")
    with tempfile.TemporaryDirectory(prefix="occo-bench-fingerprint-") as scratch:
        files = {}
        for i in range(args.files):
            path = Path(scratch) / f"{i:06d}.png"
            path.write_bytes(os.urandom(args.kb * 1024))
            files[f"ir/{i:06d}"] = path
        paths = list(files.values())
        stat = lambda: digest_value([(p.name, st.st_size, st.st_mtime_ns) for p in paths for st in (p.stat(),)])  # noqa: E731
        with ThreadPoolExecutor(max_workers=args.threads) as pool:
            runs = {
                "stat only (name, size, mtime)": stat,
                "read every byte": lambda: sum(len(p.read_bytes()) for p in paths),
                "digest_files (serial sha256)": lambda: digest_files(files),
                f"sha256 in {args.threads} threads": lambda: list(pool.map(sha256_file, paths)),
            }
            seconds = {name: measure(fn, cpu, args.warmup, args.repeats)[0] for name, fn in runs.items()}
    mib = args.files * args.kb / 1024
    print(
        f"{args.files} files x {args.kb} KiB = {mib:.0f} MiB; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs; page cache warm; median of {args.repeats}\n"
    )
    base = seconds["read every byte"]
    rows = [
        (name, f"{s:.3f}", f"{args.files / s:.0f}", f"{mib / s:.0f}", f"{s / base:.2f}") for name, s in seconds.items()
    ]
    table(("what", "s", "files/s", "MiB/s", "× read"), rows)


if __name__ == "__main__":
    main()
