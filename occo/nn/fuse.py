"""Fuse infrared/visible pairs at full resolution into 8-bit PNGs.

The network fuses luminance: infrared (grey, or the Y of an RGB infrared image) with the visible
image's BT.601 Y; colour comes back from the visible image's Cb/Cr (a grey visible image gives a
grey result). Same-size pairs are fused together in batches that fit the memory budget; an image
too large for it is fused tile by tile with the same result (occo.nn.fifn.tiling). Every output records
the sha256 of the checkpoint that made it (PNG text ``occo-checkpoint-sha256``), so a folder never
silently mixes the outputs of two checkpoints.
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from pathlib import Path

import torch
from tqdm import tqdm

from occo.config import Fuse
from occo.data.color import rgb_to_ycbcr, ycbcr_to_rgb
from occo.data.io import MAX_PIXELS, DataError, png_text, read_size, save_png, sha256_file, to_float
from occo.data.pairs import Pair, find_pairs, load_pair
from occo.nn.checkpoint import load_model
from occo.nn.fifn.model import FIFN, fuse_y
from occo.nn.fifn.tiling import bytes_per_pixel, core_side, fuse_y_tiled
from occo.pipeline.device import resolve_batch_size, resolve_device
from occo.pipeline.shard import WHOLE, Shard, ShardedStage
from occo.pipeline.sources import FUSED

log = logging.getLogger(__name__)

CHECKPOINT_KEY = "occo-checkpoint-sha256"
_GIB = 1 << 30


def _free_memory(device: torch.device) -> int:
    """Bytes free now: on the CUDA device, else the host's MemAvailable (Linux)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError, IndexError) as exc:
        raise DataError(f"cannot read the free memory of this host ({exc}); give the memory budget in GB") from exc


def memory_budget(value: object, what: str, device: torch.device) -> int:
    """A budget from params or the command line, in bytes: ``"auto"`` (half of what ``device`` has free
    now) or a positive number of GB; DataError naming ``what`` otherwise."""
    if value == "auto":
        return _free_memory(torch.device(device)) // 2
    try:
        gb = float(value) if isinstance(value, (int, float, str)) and not isinstance(value, bool) else math.nan
    except ValueError:
        gb = math.nan
    if not 0 < gb < math.inf:
        raise DataError(f"{what} must be auto or a positive number of GB, got {value!r}")
    return int(gb * _GIB)


def _load(pair: Pair, max_pixels: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Infrared luminance (1,H,W) and visible image in YCbCr (3,H,W) or grey (1,H,W)."""
    ir, vi = (to_float(a) for a in load_pair(pair, max_pixels=max_pixels))
    ir = rgb_to_ycbcr(ir)[:1] if ir.shape[0] == 3 else ir
    return ir, rgb_to_ycbcr(vi) if vi.shape[0] == 3 else vi


def colourise(y: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
    """Fused Y (1,H,W) with the chroma of ``vi`` (YCbCr (3,H,W) → RGB in [0,1]; grey (1,H,W) → grey)."""
    if vi.shape[0] == 1:
        return y
    return ycbcr_to_rgb(torch.cat([y, vi[1:]])).clamp(0, 1)


def _other_makers(out_dir: Path, pairs: list[Pair], checkpoint_sha256: str) -> tuple[list[Path], list[Path]]:
    """PNGs in ``out_dir`` not made by this checkpoint: outputs of ``pairs``, and other tagged images."""
    outputs = {out_dir / f"{p.id}.png" for p in pairs}
    ours, others = [], []
    for path in sorted(out_dir.glob("*.png")) if out_dir.is_dir() else []:
        maker = png_text(path, CHECKPOINT_KEY)
        if path in outputs and maker != checkpoint_sha256:
            ours.append(path)
        elif path not in outputs and maker is not None and maker != checkpoint_sha256:
            others.append(path)
    return ours, others


def _check_makers(
    out_dir: Path, pairs: list[Pair], checkpoint_sha256: str, *, overwrite: bool, replace_other: bool
) -> list[Path]:
    """The outputs of ``pairs`` made by another (or an unrecorded) checkpoint, which this run re-fuses.

    Without ``replace_other`` they raise DataError unless ``overwrite``, as do images of other ids
    made by another checkpoint (a run would leave them beside its own); with it, those are deleted.
    """
    stale, foreign = _other_makers(out_dir, pairs, checkpoint_sha256)
    if replace_other:
        for path in foreign:
            log.info("%s was made by another checkpoint and is not an output of this run: deleted", path)
            path.unlink(missing_ok=True)  # another shard may have deleted it
        return stale
    mine = checkpoint_sha256[:12]
    if stale and not overwrite:
        maker = png_text(stale[0], CHECKPOINT_KEY)
        raise DataError(
            f"{out_dir} already holds {len(stale)} fused images not made by this checkpoint (sha256 {mine}...), e.g. "
            f"{stale[0].name} ({'checkpoint ' + maker[:12] + '...' if maker else 'checkpoint not recorded'}): "
            "replace them (occo fuse --overwrite) or fuse into another folder"
        )
    if foreign:
        raise DataError(
            f"{out_dir} holds {len(foreign)} images made by another checkpoint that are not outputs of this run, e.g. "
            f"{foreign[0].name}: fusing here would mix checkpoints in one folder; fuse into another folder"
        )
    return stale


def fuse_folder(
    model: FIFN,
    pairs: list[Pair],
    out_dir: str | Path,
    *,
    checkpoint_sha256: str,
    device: str | torch.device,
    batch_size: int = 1,
    overwrite: bool = False,
    replace_other: bool = False,
    max_pixels: int | None = MAX_PIXELS,
    memory_budget_bytes: int | None = None,
    shard: Shard = WHOLE,
) -> list[Path]:
    """Fuse ``pairs`` into ``<out_dir>/<id>.png`` (written atomically); returns the paths written.

    Each PNG records ``checkpoint_sha256``. Outputs already made by that checkpoint are skipped, so
    an interrupted run resumes, unless ``overwrite``. Outputs made by another checkpoint (or whose
    maker is not recorded) are re-fused with ``overwrite`` or ``replace_other``, and otherwise raise
    DataError; images of other ids made by another checkpoint are deleted with ``replace_other``
    and otherwise raise DataError. Images over ``max_pixels`` raise DataError naming the file; a
    pair whose forward pass would need more than ``memory_budget_bytes`` (None: half of what
    ``device`` has free) is fused in tiles. ``shard`` fuses only its share of ``pairs`` (in id order);
    the checks above still see every pair, so shards running at once agree on what to keep.
    """
    out_dir = Path(out_dir)
    device = torch.device(device)
    if memory_budget_bytes is None:
        memory_budget_bytes = memory_budget("auto", "memory budget", device)
    stale = set(_check_makers(out_dir, pairs, checkpoint_sha256, overwrite=overwrite, replace_other=replace_other))
    share = shard.take(sorted(pairs, key=lambda p: p.id))
    todo = [p for p in share if overwrite or out_dir / f"{p.id}.png" in stale or not (out_dir / f"{p.id}.png").exists()]
    if len(todo) < len(share):
        log.info("%s: %d of %d outputs exist (this checkpoint's), skipped", out_dir, len(share) - len(todo), len(share))
    per_pixel = bytes_per_pixel(model.arch)
    by_size: dict[tuple[int, int], list[Pair]] = defaultdict(list)
    for p in todo:
        by_size[read_size(p.ir, max_pixels=max_pixels)].append(p)
    batches = []
    for (h, w), group in by_size.items():
        n = max(1, min(batch_size, memory_budget_bytes // (h * w * per_pixel)))
        batches += [group[i : i + n] for i in range(0, len(group), n)]
    text = {CHECKPOINT_KEY: checkpoint_sha256}
    written = []
    with tqdm(total=len(todo), desc=f"fuse {out_dir.name}", unit="pair", dynamic_ncols=True) as bar:
        for batch in batches:
            loaded = [_load(p, max_pixels) for p in batch]
            ir = torch.stack([ir for ir, _ in loaded])
            vi_y = torch.stack([vi[:1] for _, vi in loaded])
            if ir[0].numel() * per_pixel <= memory_budget_bytes:
                fused = fuse_y(model, ir=ir.to(device), vi=vi_y.to(device)).cpu()
            else:
                fused = _fuse_tiled(model, batch[0], ir=ir, vi=vi_y, device=device, budget=memory_budget_bytes)
            for p, (_, vi), y in zip(batch, loaded, fused):
                path = out_dir / f"{p.id}.png"
                save_png(path, colourise(y, vi), text=text)
                written.append(path)
            bar.update(len(batch))
    log.info("wrote %d fused images to %s", len(written), out_dir)
    return written


def _fuse_tiled(
    model: FIFN, pair: Pair, *, ir: torch.Tensor, vi: torch.Tensor, device: torch.device, budget: int
) -> torch.Tensor:
    """One pair (a batch of one) too large for the budget in one pass, fused tile by tile."""
    arch = model.arch
    need = ir[0].numel() * bytes_per_pixel(arch)
    if arch.compat != "fixed":
        raise DataError(
            f"{pair.ir} needs about {need / _GIB:.3g} GB in one pass, over the memory budget of "
            f"{budget / _GIB:.3g} GB, "
            f"and a compat={arch.compat!r} checkpoint normalises each image with its own whole-image statistics, "
            "which tiles cannot reproduce: raise the memory budget"
        )
    try:
        core = core_side(arch, budget)
    except ValueError as exc:
        raise DataError(f"cannot fuse {pair.ir} in tiles: {exc}") from exc
    log.info(
        "%s: about %.3g GB in one pass, over the %.3g GB budget; fusing in tiles of %d pixels",
        pair.ir,
        need / _GIB,
        budget / _GIB,
        core,
    )
    return fuse_y_tiled(model, ir=ir, vi=vi, core=core, device=device)


def fuse_splits(cfg: Fuse, index: dict[str, dict[str, int]]) -> list[tuple[str, str]]:
    """The (dataset, split) entries of ``cfg.datasets`` present in ``index`` (data/raw/INDEX.json); the
    others are skipped with a warning."""
    out = []
    for entry in cfg.datasets:
        dataset, _, split = entry.partition("/")
        if split not in index.get(dataset, {}):
            log.warning("skipping %s/%s: not in data/raw/INDEX.json", dataset, split)
            continue
        out.append((dataset, split))
    return out


def run_fuse(cfg: Fuse, root: Path, shard: Shard = WHOLE) -> list[Path]:
    """Stage `fuse`: every split of ``cfg.datasets`` with ``cfg.checkpoint`` into data/fused/occo/ and with each
    of ``cfg.extra_checkpoints`` into data/fused/<Method>/ (``shard``'s share of each split's pairs); returns
    the folders written."""
    index = json.loads((root / "data/raw/INDEX.json").read_text(encoding="utf-8"))
    device = resolve_device(cfg.device, "fuse.device")
    batch_size = resolve_batch_size(cfg.batch_size, device)
    budget = memory_budget(cfg.memory_budget_gb, "fuse.memory_budget_gb", device)
    checkpoints = {"occo": cfg.checkpoint, **cfg.extra_checkpoints}
    splits = fuse_splits(cfg, index)
    (root / FUSED / "occo").mkdir(parents=True, exist_ok=True)  # the stage output exists even when nothing is fused
    folders = []
    for method, checkpoint in checkpoints.items():
        model, _ = load_model(root / checkpoint, device)
        sha256 = sha256_file(root / checkpoint)
        for dataset, split in splits:
            data = root / "data/raw" / dataset / split
            out = root / FUSED / method / dataset / split
            fuse_folder(
                model,
                find_pairs(ir=data / "ir", vi=data / "vi"),
                out,
                checkpoint_sha256=sha256,
                device=device,
                batch_size=batch_size,
                replace_other=True,
                max_pixels=cfg.max_pixels,
                memory_budget_bytes=budget,
                shard=shard,
            )
            folders.append(out)
    return folders


def fuse_stage(cfg: Fuse, root: Path) -> ShardedStage:
    """Stage `fuse` as shards (occo/pipeline/shard.py): each fuses its share of the pairs; nothing to merge."""
    return ShardedStage(lambda shard: run_fuse(cfg, root, shard))
