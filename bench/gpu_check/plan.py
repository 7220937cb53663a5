"""The checks in the order they run, each with its own time limit (the step budget table).

Every check runs in a process of its own and is killed at its limit; the limits on a GPU add up to
the 13 minutes the whole run may take on one GPU, 15 on several (``GPU_TOTAL_S``). ``dry_s`` is the limit
in the CPU dry run (0: the check needs CUDA and is skipped there); the dry run as a whole stops at
``DRY_TOTAL_S``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Check:
    """One isolated check: ``target`` (``module:function``, a generator of rows) called with ``kwargs``."""

    step: int
    name: str
    target: str
    gpu_s: int
    dry_s: int
    what: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def budget(self, dry: bool) -> int:
        return self.dry_s if dry else self.gpu_s


G = "bench.gpu_check"
CHECKS: tuple[Check, ...] = (
    Check(0, "env", f"{G}.env:check", 15, 60, "device, torch, CUDA, cuDNN, bf16, NCCL"),
    Check(1, "equality", f"{G}.equality:check", 55, 150, "metrics, occo fuse, one training-step loss: CUDA = CPU"),
    Check(
        2,
        "train-fp32",
        f"{G}.training:check",
        30,
        120,
        "training step fp32 eager, batch 12 x 256x256",
        {"bf16": False, "compile": False},
    ),
    Check(
        2, "train-bf16", f"{G}.training:check", 30, 0, "bf16 autocast + channels_last", {"bf16": True, "compile": False}
    ),
    Check(
        2, "train-fp32-compile", f"{G}.training:check", 60, 0, "fp32 + torch.compile", {"bf16": False, "compile": True}
    ),
    Check(
        2,
        "train-bf16-compile",
        f"{G}.training:check",
        60,
        0,
        "bf16 + channels_last + torch.compile",
        {"bf16": True, "compile": True},
    ),
    Check(3, "torchrun", f"{G}.distributed:check", 45, 150, "torchrun 1 process, NCCL; train, save, resume"),
    Check(4, "fusion", f"{G}.throughput:fusion", 35, 90, "fusion pairs/s at 640x480, batch 1/8/32, fp32/bf16"),
    Check(5, "metrics", f"{G}.throughput:metrics", 25, 90, "metric suite triples/s at 640x480 and 768x576"),
    Check(
        6,
        "masks",
        f"{G}.masks:check",
        60,
        150,
        "Grounding DINO Swin-T + SAM ViT-H, 2 MSRS pairs; 8 pairs within a memory budget and after out-of-memory",
    ),
    Check(7, "yolo", f"{G}.downstream:yolo", 40, 150, "YOLOv5s from scratch: train + validate, AMP"),
    Check(7, "deeplab", f"{G}.downstream:deeplab", 30, 120, "DeepLabV3+ ResNet-50: train + test, AMP"),
    Check(8, "rehearsal", f"{G}.rehearsal:check", 300, 0, "make rehearse: every stage at default sizes, on CUDA"),
    Check(9, "queue", f"{G}.multigpu:check", 60, 0, "two DVC queue workers on two GPUs (skipped with one GPU)"),
    Check(10, "shards", f"{G}.shards:check", 45, 0, "fuse in two torchrun ranks = one process (skipped with one GPU)"),
)
GPU_TOTAL_S = 895
"""The whole GPU run, checks and their start-up: within 13 minutes (780 s of limits) on one GPU, where the two
multi-GPU checks skip in seconds; within 15 on several."""
DRY_TOTAL_S = 600
"""The CPU dry run stops starting checks after this (a bound for CI)."""


def budget_table() -> str:
    """The budget table, markdown."""
    lines = ["| step | check | what | limit on a GPU (s) | limit in the dry run (s) |", "|---|---|---|---:|---:|"]
    lines += [f"| {c.step} | {c.name} | {c.what} | {c.gpu_s} | {c.dry_s or 'needs CUDA'} |" for c in CHECKS]
    lines.append(
        f"| | all | | {sum(c.gpu_s for c in CHECKS)} (run stops at {GPU_TOTAL_S}) | "
        f"{sum(c.dry_s for c in CHECKS)} (run stops at {DRY_TOTAL_S}) |"
    )
    return "\n".join(lines) + "\n"
