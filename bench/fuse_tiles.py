"""Benchmark: fusion memory per pixel, and tiled fusion (occo.nn.fifn.tiling) against one whole-image pass.

For the default network (random init: memory and time do not depend on the weights), on CPU and
(when present) CUDA, printed as markdown tables:

1. peak working memory of one ``fuse_y`` pass per input pixel at several sizes, next to
   ``occo.nn.fifn.tiling.bytes_per_pixel`` (the estimate the memory budget uses). CUDA: the allocator's
   peak; CPU: the peak of live tensor storage, counted op by op (also run on CUDA, to check the
   counter against the allocator);
2. tiled fusion under ``--budget-gb``: peak memory, time against one pass (ratio, medians of
   ``--repeats``), and the largest difference from one pass in grey levels; sizes whose one pass
   would not fit the device are fused tiled only.

    python bench/fuse_tiles.py --devices cpu --sizes 256x256,512x384 --tiled 512x384 --budget-gb 0.2
    python bench/fuse_tiles.py --devices cuda --sizes 1024x768,2048x2048 --tiled 2048x2048,10000x10000
"""

from __future__ import annotations

import argparse
import functools
import sys
import weakref
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.train import measure, sync, table  # noqa: E402
from occo.config import Arch  # noqa: E402
from occo.nn import build_model, fuse_y  # noqa: E402
from occo.nn.fifn.tiling import bytes_per_pixel, core_side, fuse_y_tiled  # noqa: E402


class LiveStorage(TorchDispatchMode):
    """Peak bytes of tensor storage created inside the mode and still alive (inputs and weights excluded)."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, int] = {}
        self.current = self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                key = storage.data_ptr()
                if key and key not in self.live:
                    self.live[key] = storage.nbytes()
                    self.current += storage.nbytes()
                    self.peak = max(self.peak, self.current)
                    weakref.finalize(storage, self._free, key)
        return out

    def _free(self, key: int) -> None:
        self.current -= self.live.pop(key, 0)


def images(size: str, dev: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    width, height = (int(v) for v in size.split("x"))
    g = torch.Generator().manual_seed(0)
    return tuple(torch.rand(1, 1, height, width, generator=g).to(dev) for _ in range(2))


def peak_bytes(fn, dev: torch.device) -> tuple[int, int | None]:
    """(live-storage peak, CUDA allocator peak above the start) of one call."""
    sync(dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
        start = torch.cuda.memory_allocated(dev)
    counter = LiveStorage()
    with counter:
        fn()
    sync(dev)
    allocator = torch.cuda.max_memory_allocated(dev) - start if dev.type == "cuda" else None
    return counter.peak, allocator


def fuse_on_host(model: torch.nn.Module, *, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
    """``fuse_y``'s result copied to the CPU, where the tiled fusion returns its own."""
    return fuse_y(model, ir=ir, vi=vi).cpu()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", default="auto", help="'auto' (cpu, plus cuda when present) or e.g. 'cpu,cuda'")
    parser.add_argument("--sizes", default="256x256,512x384", help="WxH sizes for the memory per pixel")
    parser.add_argument("--tiled", default="512x384", help="WxH sizes fused in tiles under --budget-gb")
    parser.add_argument("--budget-gb", type=float, default=0.2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.devices == "auto":
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    else:
        devices = args.devices.split(",")
    cfg = Arch()
    estimate = bytes_per_pixel(cfg)
    torch.set_grad_enabled(False)
    for name in devices:
        dev = torch.device(name)
        model = build_model(cfg, seed=0).to(dev).eval()
        print(
            f"## {dev} ({torch.cuda.get_device_name(dev) if dev.type == 'cuda' else 'CPU'}), default network, "
            f"estimate {estimate} bytes/pixel\n"
        )
        rows = []
        for size in args.sizes.split(","):
            ir, vi = images(size, dev)
            live, allocator = peak_bytes(functools.partial(fuse_y, model, ir=ir, vi=vi), dev)
            pixels = ir.numel()
            rows.append((size, f"{live / pixels:,.0f}", "—" if allocator is None else f"{allocator / pixels:,.0f}"))
        table(("size", "live storage, bytes/pixel", "CUDA allocator, bytes/pixel"), rows)
        budget = int(args.budget_gb * 2**30)
        core = core_side(cfg, budget)
        rows = []
        for size in args.tiled.split(","):
            ir, vi = images(size, dev)
            pixels = ir.numel()
            fits = dev.type == "cpu" or pixels * estimate < torch.cuda.mem_get_info(dev)[0] * 0.8
            tiled_fusion = functools.partial(fuse_y_tiled, model, ir=ir, vi=vi, core=core, device=dev)
            tiled_s, tiled = measure(tiled_fusion, dev, 0, args.repeats)
            live, allocator = peak_bytes(tiled_fusion, dev)
            peak = allocator if allocator is not None else live
            if fits:
                one_s, one = measure(functools.partial(fuse_on_host, model, ir=ir, vi=vi), dev, 1, args.repeats)
                diff = f"{(tiled - one).abs().max().item() * 255:.4f}"
                ratio = f"{tiled_s / one_s:.2f}"
            else:
                one_s, diff, ratio = None, "—", "—"
            rows.append(
                (
                    size,
                    f"{pixels * estimate / 2**30:.1f}",
                    core,
                    f"{peak / 2**30:.2f}",
                    f"{tiled_s:.2f}",
                    "—" if one_s is None else f"{one_s:.2f}",
                    ratio,
                    diff,
                )
            )
        print(
            f"Tiled under a budget of {args.budget_gb:g} GB (tile cores of {core} pixels); medians of "
            f"{args.repeats} runs\n"
        )
        table(
            (
                "size",
                "one pass needs (GB, estimate)",
                "core",
                "tiled peak (GB)",
                "tiled (s)",
                "one pass (s)",
                "tiled / one pass",
                "max diff (grey levels)",
            ),
            rows,
        )


if __name__ == "__main__":
    main()
