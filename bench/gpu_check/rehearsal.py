"""Step 8: ``make rehearse`` on CUDA: every stage at the default sizes (``bench/rehearse.py``), as CI runs it on a CPU.

The rehearsal runs in its own clone of this checkout's HEAD with this environment's Python; its table
(per stage: wall time, peak host RSS, peak CUDA memory) becomes the row. PASS when every stage ran.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

from bench.gpu_check.context import FAIL, PASS, Context, Row
from bench.rehearse import main as rehearse
from bench.rehearse import stage_rows


def check(ctx: Context) -> Iterator[Row]:
    out, kept = ctx.work / "rehearsal.md", ctx.work / "rehearsal"
    code = rehearse(["--out", str(out), "--venv", sys.prefix, "--keep", str(kept)])
    log = kept / "rehearsal.log"
    rows = stage_rows(log.read_text(encoding="utf-8")) if log.is_file() else []
    stages = "; ".join(f"{r.stage} {r.seconds:.0f} s, RSS {r.rss_gb:.1f} GB, CUDA {r.cuda_gb:.1f} GB" for r in rows)
    yield Row(
        "8 rehearsal (make rehearse on CUDA)",
        PASS if code == 0 else FAIL,
        f"{len(rows)} stages at the default sizes, random weights: {stages or 'none finished'}"
        + ("" if code == 0 else f"; dvc exp run failed, see {Path(out)}"),
        {"stages": [r.__dict__ for r in rows]},
    )
