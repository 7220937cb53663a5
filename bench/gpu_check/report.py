"""The report: the machine, one table of every check's status and figures (ratios included), the targets,
the output of what failed and the raw results as JSON."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import Any

from bench.gpu_check.context import Row
from bench.gpu_check.runner import Outcome

TRAIN_BASE = "train-fp32"
FUSION_TARGET = 500.0
METRICS_TARGET_S = 10.0
SPEED_TARGET = 2.5
SHARE_TARGET = 0.30


def cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return " ".join(str(text).split()).replace("|", "/")


def figures_of(outcomes: list[Outcome], name: str, row: int = 0) -> dict[str, Any]:
    """The figures of row ``row`` of check ``name`` ({} when it gave none)."""
    for o in outcomes:
        if o.check.name == name and len(o.rows) > row:
            return o.rows[row].figures
    return {}


def header(info: dict[str, Any], dry: bool, seconds: float, total: float) -> list[str]:
    if info.get("cuda"):
        device = (
            f"{info['device']} (compute {info['capability']}, {info['memory_gib']} GiB, "
            f"{info['devices']} device(s), bf16 {'yes' if info['bf16'] else 'no'})"
        )
    else:
        device = info.get("device", "device unknown (the environment check failed)")
    versions = (
        f"torch {info.get('torch', '?')} · CUDA {info.get('cuda_build', '?')} · cuDNN {info.get('cudnn', '?')} · "
        f"NCCL {'yes' if info.get('nccl') else 'no'} · TF32 convs {'on' if info.get('tf32_conv') else 'off'}, "
        f"matmul {'on' if info.get('tf32_matmul') else 'off'} (as torch starts) · Python "
        f"{info.get('python', '?')}, {info.get('cpus', '?')} CPUs"
    )
    mode = (
        "**CPU dry run**: no CUDA here (or `--dry-run`); the CPU-possible checks ran at tiny sizes, so no "
        "figure below is a GPU figure."
        if dry
        else "**GPU run.**"
    )
    return [
        "# GPU check (`make gpu-check`)",
        "",
        f"Device: {device}",
        "",
        versions,
        "",
        f"{mode} {seconds:.0f} s in all (limit {total} s), {time.strftime('%Y-%m-%d %H:%M %Z')}.",
        "",
    ]


def with_ratio(row: Row, base: float | None) -> str:
    """A training row's summary with its speed against fp32 eager of the same run."""
    step = row.figures.get("step_ms")
    if step and base:
        return f"{row.summary}; x{base / step:.2f} vs fp32 eager"
    return row.summary


def results_table(outcomes: list[Outcome]) -> list[str]:
    base = figures_of(outcomes, TRAIN_BASE).get("step_ms")
    lines = ["| check | status | s (limit) | figures |", "|---|---|---:|---|"]
    for o in outcomes:
        for i, row in enumerate(o.rows):
            timing = f"{o.seconds:.0f} ({o.limit:.0f})" if i == 0 and o.limit else ""
            summary = with_ratio(row, base) if o.check.step == 2 else row.summary
            lines.append(f"| {cell(row.name)} | {row.status} | {timing} | {cell(summary)} |")
    return lines + [""]


def verdict(ok: bool | None) -> str:
    return "—" if ok is None else "yes" if ok else "no"


def targets(outcomes: list[Outcome], dry: bool) -> list[str]:
    """The GPU targets (training step time, fusion and metrics throughput) against this run's figures (reported,
    never asserted)."""
    lines = ["## Targets (reported, not asserted)", ""]
    if dry:
        return lines + ["Not measured: a CPU dry run has no GPU figure.", ""]
    rows: list[tuple[str, str, bool | None]] = []
    base = figures_of(outcomes, TRAIN_BASE).get("step_ms")
    speeds = {
        name: base / f["step_ms"]
        for name in ("train-bf16", "train-bf16-compile")
        if base and (f := figures_of(outcomes, name)).get("step_ms")
    }
    rows.append(
        (
            f"bf16 + channels_last training step ≥ {SPEED_TARGET}x fp32 eager",
            ", ".join(f"{n.removeprefix('train-')} x{s:.2f}" for n, s in speeds.items()) or "not measured",
            max(speeds.values()) >= SPEED_TARGET if speeds else None,
        )
    )
    shares = {
        name: f["contrastive_step"]
        for name in ("train-fp32", "train-bf16")
        if "contrastive_step" in (f := figures_of(outcomes, name))
    }
    rows.append(
        (
            f"contrastive loss < {SHARE_TARGET:.0%} of the step",
            ", ".join(f"{n.removeprefix('train-')} {s:.0%}" for n, s in shares.items()) or "not measured",
            all(s < SHARE_TARGET for s in shares.values()) if shares else None,
        )
    )
    rows.append(fusion_target(outcomes))
    metrics = figures_of(outcomes, "metrics")
    if "projected_361_s" in metrics:
        compute, whole = metrics["projected_361_s"], metrics.get("projected_361_evaluate_s")
        rows.append(
            (
                f"MSRS test split (361 pairs), whole suite, < {METRICS_TARGET_S:g} s",
                f"{compute:.1f} s compute only"
                + (f", {whole:.1f} s with evaluate_pairs (PNG decode)" if whole else ""),
                compute < METRICS_TARGET_S,
            )
        )
    else:
        rows.append((f"MSRS test split (361 pairs), whole suite, < {METRICS_TARGET_S:g} s", "not measured", None))
    lines += ["| target | measured | met |", "|---|---|---|"]
    lines += [f"| {cell(t)} | {cell(m)} | {verdict(ok)} |" for t, m, ok in rows]
    return lines + [""]


def fusion_target(outcomes: list[Outcome]) -> tuple[str, str, bool | None]:
    """Fusion ≥ 500 pairs/s at 640x480 in bf16: the device-resident rate and, when below, the slowest part."""
    title = f"fusion ≥ {FUSION_TARGET:g} pairs/s at 640x480 in bf16"
    rates = figures_of(outcomes, "fusion").get("pairs_s", {})
    bf16 = {k: v for k, v in rates.items() if k.startswith("bf16")}
    if not bf16:
        return title, "not measured", None
    best = max(bf16, key=bf16.get)
    parts = figures_of(outcomes, "fusion", 1)
    text = f"compute {bf16[best]:,.0f} ({best}, inputs on the GPU)"
    if parts:
        stages = {
            "decode + encode on the CPU": parts["decode_encode_pairs_s"],
            "transfer": parts["transfer_pairs_s"],
            "compute": bf16[best],
        }
        slowest = min(stages, key=stages.get)
        text += (
            f"; decode + encode {parts['decode_encode_pairs_s']:,.0f}, transfer {parts['transfer_pairs_s']:,.0f}, "
            f"fuse_folder fp32 {parts['fuse_folder_pairs_s']:,.0f}: a bf16 pipeline is limited by {slowest} "
            f"({stages[slowest]:,.0f})"
        )
    return title, text, bf16[best] >= FUSION_TARGET


def failures(outcomes: list[Outcome]) -> list[str]:
    lines = []
    for o in outcomes:
        if o.tail:
            lines += [f"### {o.check.name}: last lines of its output", "", "```", *o.tail, "```", ""]
    return (["## Output of the checks that failed", "", *lines]) if lines else []


def render(outcomes: list[Outcome], info: dict[str, Any], *, dry: bool, seconds: float, total: float) -> str:
    raw = [
        {
            "check": o.check.name,
            "step": o.check.step,
            "seconds": round(o.seconds, 2),
            "limit": o.limit,
            "rows": [asdict(r) for r in o.rows],
        }
        for o in outcomes
    ]
    lines = header(info, dry, seconds, total) + results_table(outcomes) + targets(outcomes, dry) + failures(outcomes)
    lines += ["## Results as JSON", "", "```json", json.dumps(raw, indent=1, default=str), "```", ""]
    return "\n".join(lines)
