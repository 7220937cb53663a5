"""A DVC workspace whose one stage reports the GPU ``device: auto`` gave it: DVC's queue and occo's GPU locks in
seconds, without the pipeline's cost (tests/study/test_queue.py; ``make gpu-check``'s multi-GPU row).

:func:`make_probe` writes a git + DVC repository holding this checkout's params.yaml (so ``occo study`` queues
the paper's grids in it) and a ``dvc.yaml`` whose stage ``probe`` depends on the paper's settings and runs
``python -m bench.probe_study``: it resolves ``auto`` through ``occo.pipeline.device``, holds that device for
``seconds`` of ``probe.yaml`` (on CUDA: matrix products on it), and writes ``probe.json`` (device index, GPU id,
start, end, pid, working folder), a metric each experiment's commit carries, and ``held.txt``, an output DVC
caches. With ``OCCO_PROBE_FAKE_GPUS=N`` the stage sees N fake GPUs (the device list patched), so a CPU machine
shows the locks at work.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
FAKE = "OCCO_PROBE_FAKE_GPUS"
WATCHED = ["omega1", "omega2", "omega3", "omega4", "omega5", "omega6", "ablation", "arch", "masks.prompt"]


def make_probe(root: Path, seconds: float) -> Path:
    """The probe workspace at ``root`` (created), committed; returns ``root``."""
    root.mkdir(parents=True)
    (root / "params.yaml").write_bytes((REPO / "params.yaml").read_bytes())
    (root / "probe.yaml").write_text(yaml.safe_dump({"seconds": seconds}), encoding="utf-8")
    stage = {
        "cmd": "python -m bench.probe_study",
        "params": [*WATCHED, {"probe.yaml": ["seconds"]}],
        "outs": ["held.txt"],
        "metrics": [{"probe.json": {"cache": False}}],
    }
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"probe": stage}}, sort_keys=False), encoding="utf-8")
    for args in (
        ["git", "init", "-q"],
        ["git", "config", "user.name", "occo probe"],
        ["git", "config", "user.email", "probe@occo.invalid"],
        [sys.executable, "-m", "dvc", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "commit", "-qm", "probe workspace"],
    ):
        subprocess.run(args, cwd=root, check=True, env=os.environ | {"DVC_NO_ANALYTICS": "1"})
    return root


def probe_runs(root: Path) -> dict[str, dict]:
    """``probe.json`` of every experiment of the probe workspace, by experiment name."""
    from occo.report.git import experiment_refs, file_at

    return {
        ref.name: json.loads(file_at(root, ref.commit, "probe.json") or "{}") for ref in experiment_refs(root) or []
    }


def overlapping_on_one_gpu(runs: dict[str, dict]) -> list[tuple[str, str]]:
    """Pairs of runs that ran at the same time on the same GPU."""
    names = sorted(runs)
    return [
        (a, b)
        for i, a in enumerate(names)
        for b in names[i + 1 :]
        if runs[a]["gpu"] == runs[b]["gpu"] and runs[a]["start"] < runs[b]["end"] and runs[b]["start"] < runs[a]["end"]
    ]


def _hold(device, seconds: float) -> None:
    """Keep ``device`` busy (CUDA: matrix products) or the process alive (otherwise) for ``seconds``."""
    import torch

    end = time.time() + seconds
    if device.type != "cuda" or not torch.cuda.is_available():
        time.sleep(seconds)
        return
    x = torch.randn(2048, 2048, device=device)
    while time.time() < end:
        x = torch.tanh(x @ x)
        torch.cuda.synchronize(device)


def stage() -> None:
    """The probe stage: resolve ``auto``, hold the device, write probe.json."""
    from occo.pipeline import device

    fake = int(os.environ.get(FAKE, "0"))
    if fake:  # a patched device list: the claim is real; the fake cuda:N is only recorded, never used
        import torch

        device.visible_gpus = lambda: [f"GPU-fake-{i}" for i in range(fake)]
        torch.cuda.set_device = lambda index: None
    start = time.time()
    dev = device.resolve_device("auto")
    gpus = device.visible_gpus()
    index = dev.index if dev.index is not None else (0 if gpus else None)
    _hold(dev, yaml.safe_load(Path("probe.yaml").read_text(encoding="utf-8"))["seconds"])
    record = {
        "device": str(dev),
        "index": index,
        "gpu": gpus[index] if index is not None else "cpu",
        "start": start,
        "end": time.time(),
        "pid": os.getpid(),
        "cwd": os.getcwd(),
    }
    Path("probe.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    Path("held.txt").write_text(f"{record['device']} {record['gpu']}\n", encoding="utf-8")


if __name__ == "__main__":
    stage()
