"""bench/gpu_check: the dry run writes its table; a failing, crashing or hanging check is recorded and the
others still run; the GPU report's ratios and targets; the equality comparisons on a second device."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

from bench.gpu_check import equality
from bench.gpu_check.context import DONE, FAIL, PASS, SKIP, TIMEOUT, Context, Row, real_pairs
from bench.gpu_check.distributed import run_problems
from bench.gpu_check.plan import CHECKS, GPU_TOTAL_S, Check
from bench.gpu_check.report import render
from bench.gpu_check.runner import Outcome, child_env, main, run_all
from support import REPO

FAKE_CHECKS = """
import os, sys, time
from bench.gpu_check.context import DONE, Row

def ok(ctx):
    yield Row("ok", DONE, f"on {ctx.device}")

def boom(ctx, word):
    yield Row("boom part 1", DONE, "fine")
    raise RuntimeError(f"bad {word}")

def hang(ctx, pid_file):
    open(pid_file, "w").write(str(os.getpid()))
    yield Row("hang part 1", DONE, "fine")
    time.sleep(120)

def crash(ctx):
    yield Row("crash part 1", DONE, "fine")
    sys.stdout.flush()
    os.abort()
"""


def table_rows(text: str) -> dict[str, list[str]]:
    """Name -> cells of the results table (rows of 4 cells)."""
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("| ")]
    return {r[0]: r for r in rows if len(r) == 4}


def test_dry_run_writes_its_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "gpu_check.md"
    assert main(["--dry-run", "--only", "train-bf16,metrics", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert len(re.findall(r"^gpu-check: .*CPU dry run", printed, re.MULTILINE)) == 1  # says so in one line
    assert "| 4 | fusion |" in printed  # the budget table comes first
    text = out.read_text(encoding="utf-8")
    assert text in printed
    rows = table_rows(text)
    assert rows["0 environment"][1] == DONE
    assert rows["2 train-bf16"][1:] == [SKIP, "", "needs CUDA"]
    metrics = [r for name, r in rows.items() if name.startswith("5 metrics")]
    assert len(metrics) == 2 and all(r[1] == DONE for r in metrics)
    assert re.search(r"triples/s at batch 1: [\d,.]+", metrics[0][3])
    assert "train-fp32" not in rows and "1a metrics CPU = CUDA" not in rows  # not selected
    assert "Not measured: a CPU dry run has no GPU figure." in text
    raw = json.loads(text.split("```json\n")[1].split("```")[0])
    assert [r["check"] for r in raw] == ["env", "train-bf16", "metrics"]
    assert raw[2]["rows"][0]["figures"]["triples_s"]["1"] > 0


def test_failures_and_timeouts_stay_in_their_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "fake_checks.py").write_text(FAKE_CHECKS, encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    work = tmp_path / "work"
    work.mkdir()
    ctx = Context(device="cpu", work=work, params=REPO / "params.yaml")
    pid_file = tmp_path / "hang.pid"
    checks = [
        Check(1, "boom", "fake_checks:boom", 60, 60, "raises", {"word": "input"}),
        Check(2, "hang", "fake_checks:hang", 60, 5, "sleeps", {"pid_file": str(pid_file)}),
        Check(3, "crash", "fake_checks:crash", 60, 60, "aborts"),
        Check(4, "needs-cuda", "fake_checks:ok", 60, 0, "GPU only"),
        Check(5, "ok", "fake_checks:ok", 60, 60, "fine"),
    ]
    start = time.time()
    boom, hang, crash, cuda, ok = run_all(checks, ctx, child_env(work), total=200)
    assert time.time() - start < 90
    assert [(r.name, r.status) for r in boom.rows] == [("boom part 1", DONE), ("1 boom", FAIL)]
    assert boom.rows[1].summary == "RuntimeError: bad input"
    assert any("RuntimeError: bad input" in line for line in boom.tail)
    assert [r.status for r in hang.rows] == [DONE, TIMEOUT] and hang.seconds < 15
    assert hang.rows[1].summary.startswith("no result within its 5 s limit after 1 finished row(s)")
    with pytest.raises(ProcessLookupError):  # killed with its process group
        os.kill(int(pid_file.read_text()), 0)
    assert [r.status for r in crash.rows] == [DONE, FAIL] and "SIGABRT" in crash.rows[1].summary
    assert [(r.status, r.summary) for r in cuda.rows] == [(SKIP, "needs CUDA")]
    assert [(r.status, r.summary) for r in ok.rows] == [(DONE, "on cpu")] and not ok.failed

    spent = run_all(checks[4:], ctx, child_env(work), total=5)[0]
    assert [(r.status, r.summary) for r in spent.rows] == [(SKIP, "the run's 5 s were spent")]


def outcome(name: str, *rows: Row, seconds: float = 1.0) -> Outcome:
    check = next(c for c in CHECKS if c.name == name)
    return Outcome(check, list(rows), seconds, check.gpu_s)


def test_gpu_report_ratios_and_targets() -> None:
    fusion_rates = {"fp32 b8": 300.0, "bf16 b8": 450.0, "bf16 + channels_last b32": 620.0, "official fp32": 40.0}
    outcomes = [
        outcome(
            "env",
            Row(
                "0 environment",
                DONE,
                "in the header",
                {
                    "cuda": True,
                    "device": "NVIDIA H200",
                    "capability": "9.0",
                    "memory_gib": 139.8,
                    "devices": 1,
                    "bf16": True,
                    "torch": "2.x",
                    "cuda_build": "13.0",
                    "cudnn": "92400",
                    "nccl": True,
                },
            ),
        ),
        outcome(
            "train-fp32",
            Row("2 training step, fp32 eager", DONE, "300 ms", {"step_ms": 300.0, "contrastive_step": 0.2}),
        ),
        outcome(
            "train-bf16", Row("2 training step, bf16", DONE, "150 ms", {"step_ms": 150.0, "contrastive_step": 0.35})
        ),
        outcome("train-bf16-compile", Row("2 train-bf16-compile", TIMEOUT, "no result | within 60 s")),
        outcome(
            "fusion",
            Row("4 fusion 640x480", DONE, "rates", {"pairs_s": fusion_rates}),
            Row(
                "4 fusion pipeline",
                DONE,
                "parts",
                {"fuse_folder_pairs_s": 90.0, "decode_encode_pairs_s": 95.0, "transfer_pairs_s": 2000.0},
            ),
        ),
        outcome(
            "metrics",
            Row("5 metrics 640x480", DONE, "triples", {"projected_361_s": 2.5, "projected_361_evaluate_s": 12.0}),
        ),
    ]
    text = render(outcomes, outcomes[0].rows[0].figures, dry=False, seconds=400, total=GPU_TOTAL_S)
    assert "Device: NVIDIA H200 (compute 9.0, 139.8 GiB, 1 device(s), bf16 yes)" in text
    rows = table_rows(text)
    assert rows["2 training step, fp32 eager"][3] == "300 ms; x1.00 vs fp32 eager"
    assert rows["2 training step, bf16"][3] == "150 ms; x2.00 vs fp32 eager"
    assert rows["2 train-bf16-compile"][1:] == [TIMEOUT, "1 (60)", "no result / within 60 s"]  # '|' escaped
    targets = {
        r[0]: r[1:]
        for r in (
            [c.strip() for c in line.strip("|").split("|")]
            for line in text.split("## Targets")[1].splitlines()
            if line.startswith("| ")
        )
        if len(r) == 3
    }
    assert targets["bf16 + channels_last training step ≥ 2.5x fp32 eager"] == ["bf16 x2.00", "no"]
    assert targets["contrastive loss < 30% of the step"] == ["fp32 20%, bf16 35%", "no"]
    fusion = targets["fusion ≥ 500 pairs/s at 640x480 in bf16"]
    assert fusion[1] == "yes" and fusion[0].startswith("compute 620 (bf16 + channels_last b32")
    assert "limited by decode + encode on the CPU (95)" in fusion[0]
    assert targets["MSRS test split (361 pairs), whole suite, < 10 s"] == [
        "2.5 s compute only, 12.0 s with evaluate_pairs (PNG decode)",
        "yes",
    ]


def test_resume_problems_are_named() -> None:
    good = {"backend": "nccl", "all_reduce": True, "resumed_from": 4, "checkpoint_step": 8, "final": True}
    assert run_problems(good, 4, 8) == []
    fresh = {**good, "resumed_from": None}
    assert run_problems(fresh, 4, 8) == ["resumed from step None, expected 4"]
    assert run_problems({"error": "torchrun (8 steps) exited with 1"}, 4, 8) == ["torchrun (8 steps) exited with 1"]
    assert run_problems({**good, "all_reduce": False, "final": False}, 4, 8) == [
        "nccl all-reduce gave a wrong sum",
        "no final weights models/occo.pt",
    ]


def test_equality_comparisons_on_a_second_device(tmp_path: Path) -> None:
    """The CUDA half's comparison code, with the CPU as the second device: everything equal, every part PASS."""
    ctx = Context(device="cpu", work=tmp_path, params=REPO / "params.yaml")
    pairs = real_pairs(ctx, "TNO", 1)
    if not pairs:
        pytest.skip(f"{ctx.shared} not found")
    metrics = equality.metrics_equal(ctx, pairs, "1 TNO pair", "cpu")
    assert metrics.status == PASS and metrics.figures["max_rel"] == 0.0, metrics
    fuse = equality.fuse_equal(ctx, pairs, "1 TNO pair", "cpu")
    assert fuse.status == PASS, fuse
    assert fuse.figures == {"fp32_levels": 0, "fp32_no_tf32_levels": 0, "bf16_levels": 0}  # autocast "cuda": off here
    loss = equality.loss_equal(ctx, "cpu")
    assert loss.status == PASS and loss.figures["rel"] == 0.0 and loss.figures["grad_rel"] < 1e-5, loss  # threaded sums
    assert "; cpu fp32 (TF32 off) relative difference 0.0e+00" in loss.summary


def test_docs_budget_table_matches_the_plan() -> None:
    """docs/gpu_check.md repeats the GPU limits of plan.CHECKS: they must not drift apart."""
    docs = (REPO / "docs/gpu_check.md").read_text(encoding="utf-8")
    limits = {}
    for line in docs.split("| step | check | limit on a GPU (s) |")[1].split("\n\n")[0].splitlines()[2:]:
        _, names, seconds = (c.strip() for c in line.strip("|").split("|"))
        first = names.split(":")[0]
        limits.update(zip([n.strip() for n in first.split(",")], [int(s) for s in seconds.split(",")]))
    assert limits == {c.name: c.gpu_s for c in CHECKS}
    assert f"They add up to {sum(c.gpu_s for c in CHECKS)} s; the run stops starting checks at {GPU_TOTAL_S} s" in docs
