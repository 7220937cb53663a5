"""Rehearse the default configuration: every stage at the default architectures and sizes, on a few real pairs.

The models are the configured ones at random init (no download): SAM ViT-H and Grounding DINO Swin-T
with a bert-base-sized text encoder (``masks.init: random``), VGG19, yolov5s, DeepLabV3+ resnet50; the
sizes are params.yaml's (crop 256, batch 12, its worker counts, YOLO at 640, the segmenter at the
images' native size). What is cut is the data and the length: 1 pair per split of every ../shared
dataset (``download.datasets.<name>.limit``), 2 training steps, one epoch downstream. ../shared holds
no labelled training split, so detection and segmentation run on the synthetic set made at MSRS's
native 480x640 (8 train pairs, so the segmenter trains at its default batch of 8; 1 test pair).
Everything else is the default.

It runs ``dvc exp run -n rehearsal`` with those overrides (:data:`OVERRIDES`, each with why) in a fresh
clone of this checkout's HEAD (this checkout's ``.venv``, ../shared linked beside it), so the stages are
the ones users run, through DVC, and the checkout is left alone. Each stage logs its time and peak memory
when it ends (``occo.pipeline.entry``); the rehearsal writes them as one table to ``--out``
(``reports/rehearsal.md``) with the settings, the machine and its load, and exits 1 when a stage failed.

    python -m bench.rehearse                       # CPU or GPU, whatever the machine has (CUDA when present)
    python -m bench.rehearse --keep runs/rehearsal # keep the log and the run's reports/report.md
    python -m bench.rehearse --log run.log         # parse a log of an earlier rehearsal only
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.gpu_check.runner import OFFLINE
from bench.pipeline import stage_lines

REPO = Path(__file__).resolve().parents[1]
DONE = re.compile(
    r"stage \S+ done in [0-9.]+ s \((?P<process>[0-9.]+) s since the process started\); "
    r"peak RSS (?P<rss>[0-9.]+) GB, CUDA (?P<cuda>[0-9.]+) GB"
)
SHARED_DATASETS = ("TNO", "TNO42", "MSRS", "M3FD", "FMB")
"""The datasets params.yaml imports from ../shared (``download.datasets``); each is cut to 1 pair per split."""


def default_fuse_datasets() -> list[str]:
    from occo.config import Fuse

    return list(Fuse().datasets)


OVERRIDES: tuple[tuple[str, str], ...] = (
    ("masks.init=random", "SAM ViT-H, Grounding DINO Swin-T with a bert-base-sized text encoder: random weights"),
    ("train.vgg_random_init=true", "the loss's VGG19: random weights"),
    ("detect.pretrained=false", "yolov5s from its yaml: random weights"),
    ("segment.encoder_weights=null", "DeepLabV3+ resnet50: random encoder"),
    *((f"download.datasets.{name}.limit=1", f"1 pair per split of ../shared's {name}") for name in SHARED_DATASETS),
    *(
        (
            f"download.synthetic.{key}={value}",
            "labelled pairs at MSRS's native 480x640 (8 train: the segmenter's default batch; 1 test) for detection "
            "and segmentation: ../shared has no labelled training split",
        )
        for key, value in (("n_train", 8), ("n_test", 1), ("height", 480), ("width", 640))
    ),
    (
        "fuse.datasets=[" + ",".join([*default_fuse_datasets(), "synthetic/train", "synthetic/test"]) + "]",
        "the default splits, and the synthetic ones the downstream tasks train and test on",
    ),
    ("detect.run=[MSRS,M3FD,synthetic]", "the defaults (skipped here: no detection splits) and the synthetic set"),
    ("segment.dataset=synthetic", "the one labelled set here"),
    ("train.max_steps=2", "2 optimiser steps"),
    ("detect.epochs=1", "one epoch per method"),
    ("segment.epochs=1", "one epoch per method"),
)
"""``dvc exp run -S`` overrides of the rehearsal and why; every param not named keeps its default."""
WITHOUT_SHARED: tuple[tuple[str, str], ...] = (
    ("masks.datasets={synthetic: [train]}", "../shared not found: masks made for the synthetic training pairs"),
    ("train.dataset=synthetic", "../shared not found: the fusion network trains on the synthetic pairs"),
)
"""Added when ../shared (and with it FMB's pairs) is absent, so that the rehearsal still runs every stage."""
EXPERIMENT = "rehearsal"


def overrides(shared: Path) -> list[tuple[str, str]]:
    """:data:`OVERRIDES`, and :data:`WITHOUT_SHARED` when ``shared`` holds no FMB pairs."""
    return [*OVERRIDES, *(() if (shared / "datasets/FMB/ir").is_dir() else WITHOUT_SHARED)]


@dataclass(frozen=True)
class StageRow:
    """One stage's figures, from its log line."""

    stage: str
    seconds: float  # since its process started: interpreter start-up and imports included
    rss_gb: float
    cuda_gb: float


def stage_rows(log: str) -> list[StageRow]:
    """Every stage that finished, in order (:func:`bench.pipeline.stage_lines`)."""
    return [StageRow(stage, *(float(m[k]) for k in ("process", "rss", "cuda"))) for stage, m in stage_lines(log, DONE)]


def machine() -> str:
    """The CPU, its cores, memory and the GPU, in words."""
    import torch

    from occo.pipeline.device import usable_cpus

    cpus = usable_cpus()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.processor() or platform.machine()}, {cpus} usable cores, {mem:.0f} GiB RAM, {gpu}"


def table(rows: list[StageRow]) -> str:
    """The per-stage markdown table and its total."""
    lines = [
        "| stage | wall (s) | peak host RSS (GB) | peak CUDA (GB) |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {r.stage} | {r.seconds:.1f} | {r.rss_gb:.2f} | {r.cuda_gb:.2f} |" for r in rows]
    lines.append(
        f"| all stages | {sum(r.seconds for r in rows):.0f} | {max((r.rss_gb for r in rows), default=0):.2f} "
        f"(largest) | {max((r.cuda_gb for r in rows), default=0):.2f} (largest) |"
    )
    return "\n".join(lines)


def report(log: str, *, wall: float | None, load: tuple[str, str], code: int, settings: list[tuple[str, str]]) -> str:
    """``reports/rehearsal.md``: the table, the settings (``settings``: the overrides and why), the machine and its
    load."""
    rows = stage_rows(log)
    status = "every stage ran" if code == 0 else f"FAILED (`dvc exp run` exit status {code}); last lines below"
    parts = [
        "# Rehearsal of the default configuration",
        "",
        f"`python -m bench.rehearse` (`make rehearse`): {status}. Machine: {machine()}; load average "
        f"{load[0]} before, {load[1]} after"
        + (f"; `dvc exp run` took {wall:.0f} s in all (DVC's own work included)." if wall is not None else "."),
        "",
        "Wall time per stage from its process's start (interpreter start-up and imports included); peak memory "
        "as the stage logs it when it ends: the stage process's peak resident memory (`VmHWM`; its data-loader "
        "workers are processes of their own, not counted) and `torch.cuda.max_memory_allocated`.",
        "",
        table(rows),
        "",
        "## Settings",
        "",
        "params.yaml's defaults, with these overrides (`dvc exp run -n rehearsal -S ...`):",
        "",
        *settings_lines(settings),
    ]
    if code != 0:
        parts += ["", "## Last lines of the log", "", "```", *log.splitlines()[-40:], "```"]
    return "\n".join(parts) + "\n"


def settings_lines(settings: list[tuple[str, str]]) -> list[str]:
    """One bullet per reason: the overrides it explains, then why."""
    grouped: dict[str, list[str]] = {}
    for override, why in settings:
        grouped.setdefault(why, []).append(f"`{override}`")
    return [f"- {', '.join(overrides)}: {why}" for why, overrides in grouped.items()]


def load_average() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def clone(tmp: Path, venv: Path) -> Path:
    """A fresh clone of HEAD in ``tmp/repo`` with this checkout's venv and ../shared linked beside it."""
    repo = tmp / "repo"
    subprocess.run(["git", "clone", "-q", str(REPO), str(repo)], check=True)
    os.symlink(venv.resolve(), repo / ".venv")
    shared = REPO.parent / "shared"
    if shared.exists():
        os.symlink(shared.resolve(), tmp / "shared")
    return repo


def run_experiment(repo: Path, venv: Path, log_path: Path, settings: list[tuple[str, str]]) -> tuple[int, float]:
    """``dvc exp run -n rehearsal -S …`` in ``repo``, its output shown and kept in ``log_path``; (exit status, s)."""
    env = {
        **OFFLINE,
        **os.environ,
        "PYTHONPATH": str(repo),
        "PATH": f"{venv.resolve() / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "YOLO_CONFIG_DIR": str(repo / ".cache/ultralytics"),
    }
    cmd = [str(venv / "bin/dvc"), "exp", "run", "-n", EXPERIMENT]
    for override, _ in settings:
        cmd += ["-S", override]
    start = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as out:
        proc = subprocess.Popen(cmd, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:
            sys.stdout.write(line)
            out.write(line)
        code = proc.wait()
    return code, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rehearse", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "reports/rehearsal.md", help="the report (markdown)")
    parser.add_argument("--venv", type=Path, default=REPO / ".venv", help="the virtual environment the stages use")
    parser.add_argument("--log", type=Path, help="only parse this log of an earlier rehearsal")
    parser.add_argument("--keep", type=Path, help="copy the run's log and its reports/report.md into this folder")
    args = parser.parse_args(argv)
    settings = overrides(REPO.parent / "shared")
    if args.log is not None:
        text = report(args.log.read_text(encoding="utf-8"), wall=None, load=("?", "?"), code=0, settings=settings)
        print(text)
        return 0
    before = load_average()
    with tempfile.TemporaryDirectory(prefix="occo-rehearsal-") as tmp:
        repo = clone(Path(tmp), args.venv)
        log_path = Path(tmp) / "rehearsal.log"
        code, wall = run_experiment(repo, args.venv, log_path, settings)
        log = log_path.read_text(encoding="utf-8")
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            for path in (log_path, repo / "reports/report.md"):
                if path.is_file():
                    shutil.copy2(path, args.keep / path.name)
    text = report(log, wall=wall, load=(before, load_average()), code=code, settings=settings)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"\n{text}\nrehearsal: wrote {args.out}", flush=True)
    return 1 if code else 0


if __name__ == "__main__":
    sys.exit(main())
