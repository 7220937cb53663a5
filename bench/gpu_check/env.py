"""Step 0: the machine as torch sees it (device, torch, CUDA and cuDNN versions, bf16, NCCL, TF32 defaults)."""

from __future__ import annotations

import os
import platform
from collections.abc import Iterator

import torch
import torch.distributed as dist

from bench.gpu_check.context import DONE, Context, Row


def describe() -> dict[str, str | bool | float]:
    """What the report's header shows; ``cuda`` says whether a CUDA device is usable."""
    cuda = torch.cuda.is_available()
    info: dict[str, str | bool | float] = {
        "torch": torch.__version__,
        "cuda_build": str(torch.version.cuda),
        "cudnn": str(torch.backends.cudnn.version()) if torch.backends.cudnn.is_available() else "none",
        "python": platform.python_version(),
        "cpus": os.cpu_count() or 0,
        "nccl": dist.is_available() and dist.is_nccl_available(),
        "cuda": cuda,
        "tf32_conv": torch.backends.cudnn.allow_tf32,
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
    }
    if cuda:
        props = torch.cuda.get_device_properties(0)
        info.update(
            device=torch.cuda.get_device_name(0),
            devices=torch.cuda.device_count(),
            capability=f"{props.major}.{props.minor}",
            memory_gib=round(props.total_memory / 2**30, 1),
            bf16=torch.cuda.is_bf16_supported(),
        )
    else:
        info["device"] = f"CPU ({platform.processor() or platform.machine()}), no CUDA device"
    return info


def check(ctx: Context) -> Iterator[Row]:
    info = describe()
    yield Row("0 environment", DONE, "in the header above; every value in the JSON below", info)
