"""Fuse infrared/visible pairs at full resolution into 8-bit PNGs.

The network fuses luminance: infrared (grey, or the Y of an RGB infrared image) with the visible
image's BT.601 Y; colour comes back from the visible image's Cb/Cr (a grey visible image gives a
grey result). The checkpoint's network (``occo.nn.networks``) sets the inference and output rules.
Same-size pairs are fused together in batches that fit the memory budget; an image too large for it
is fused tile by tile with the same result (occo.nn.fifn.tiling, occo.nn.rfn_nest.tiling); with
``split_above``, an image with a larger side is fused in RFN-Nest's four parts (occo.nn.split). Every output records
the sha256 of the checkpoint that made it (PNG text ``occo-checkpoint-sha256``), so a folder never
silently mixes the outputs of two checkpoints.

``fuse.compat`` picks the test routine (:data:`FUSE_ROUTINES`): ours rounds to 8 bits and runs each
checkpoint by its own inference rule; the authors' test script normalises BatchNorm with each image's
own statistics (it never calls ``eval()``) and truncates (``np.uint8(x·255)``).
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from occo.config import Fuse
from occo.data.color import rgb_to_ycbcr, ycbcr_to_rgb
from occo.data.io import MAX_PIXELS, DataError, png_is_whole, png_text, read_size, save_png, sha256_file, to_float
from occo.data.pairs import Pair, find_pairs, load_pair
from occo.nn.checkpoint import load_model
from occo.nn.networks import Network, fuse_luminance, network
from occo.nn.split import raw_in_parts
from occo.pipeline.device import resolve_batch_size, resolve_device
from occo.pipeline.memory import GIB, memory_budget
from occo.pipeline.shard import WHOLE, Shard, ShardedStage
from occo.pipeline.sources import FUSED, PUBLISHED

log = logging.getLogger(__name__)

CHECKPOINT_KEY = "occo-checkpoint-sha256"


@dataclass(frozen=True)
class FuseRoutine:
    """How a checkpoint's fused images are made: ``rule``, the inference rule of every checkpoint
    (``occo.nn.fifn.model.INFERENCE_RULES``; None: each checkpoint's own, its ``arch.compat``), and
    ``quantise``, how [0, 1] becomes 8 bits (``occo.data.io.QUANTISERS``)."""

    rule: str | None
    quantise: str


FUSE_ROUTINES: dict[str, FuseRoutine] = {
    "fixed": FuseRoutine(rule=None, quantise="round"),
    "official": FuseRoutine(rule="official", quantise="truncate"),
}
"""``fuse.compat`` → the test routine: ours, or the authors' test script (main.py's ``test``)."""


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


def _other_makers(out_dir: Path, pairs: list[Pair], checkpoint_sha256: str, verify: set[Path]) -> dict[str, list[Path]]:
    """PNGs in ``out_dir`` this run may not keep: ``outputs`` of ``pairs`` made by another (or no recorded)
    checkpoint, ``damaged`` outputs of this one among ``verify`` (cut short: the text tag sits before the pixels,
    so it survives a cut; reading every pixel to tell is left to the outputs this process would keep), and
    ``others``, images of other ids tagged by another checkpoint."""
    outputs = {out_dir / f"{p.id}.png" for p in pairs}
    found: dict[str, list[Path]] = {"outputs": [], "damaged": [], "others": []}
    for path in sorted(out_dir.glob("*.png")) if out_dir.is_dir() else []:
        maker = png_text(path, CHECKPOINT_KEY)
        if path in outputs and maker != checkpoint_sha256:
            found["outputs"].append(path)
        elif path in verify and not png_is_whole(path):
            log.warning("%s is cut short or damaged (made by this checkpoint): fusing it again", path)
            found["damaged"].append(path)
        elif path not in outputs and maker is not None and maker != checkpoint_sha256:
            found["others"].append(path)
    return found


def _check_makers(
    out_dir: Path,
    pairs: list[Pair],
    checkpoint_sha256: str,
    *,
    overwrite: bool,
    replace_other: bool,
    verify: set[Path],
) -> list[Path]:
    """The outputs of ``pairs`` this run fuses again: those made by another (or an unrecorded) checkpoint, and
    damaged ones of this checkpoint among ``verify``.

    Without ``replace_other`` the former raise DataError unless ``overwrite``, as do images of other ids
    made by another checkpoint (a run would leave them beside its own); with it, those are deleted.
    """
    found = _other_makers(out_dir, pairs, checkpoint_sha256, verify)
    stale, others = found["outputs"], found["others"]
    if replace_other:
        for path in others:
            log.info("%s was made by another checkpoint and is not an output of this run: deleted", path)
            path.unlink(missing_ok=True)  # another shard may have deleted it
        return stale + found["damaged"]
    if stale and not overwrite:
        maker = png_text(stale[0], CHECKPOINT_KEY)
        made_by = f"checkpoint {maker[:12]}..." if maker else "not made by occo: no checkpoint recorded"
        raise DataError(
            f"{out_dir} already holds {len(stale)} images not made by this checkpoint (sha256 "
            f"{checkpoint_sha256[:12]}...), e.g. {stale[0].name} ({made_by}): replace them (occo fuse --overwrite) "
            "or fuse into another folder"
        )
    if others:
        raise DataError(
            f"{out_dir} holds {len(others)} images made by another checkpoint that are not outputs of this run, e.g. "
            f"{others[0].name}: fusing here would mix checkpoints in one folder; fuse into another folder"
        )
    return stale + found["damaged"]


def _batches_by_size(pairs: list[Pair], batch_size: int, pixels: int, max_pixels: int | None) -> list[list[Pair]]:
    """Same-size pairs together, at most ``batch_size`` and ``pixels`` pixels per batch (one pair at least)."""
    by_size: dict[tuple[int, int], list[Pair]] = defaultdict(list)
    for p in pairs:
        by_size[read_size(p.ir, max_pixels=max_pixels)].append(p)
    batches = []
    for (h, w), group in by_size.items():
        n = max(1, min(batch_size, pixels // (h * w)))
        batches += [group[i : i + n] for i in range(0, len(group), n)]
    return batches


def fuse_folder(
    model: nn.Module,
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
    compat: str = "fixed",
    split_above: int | None = None,
    shard: Shard = WHOLE,
) -> list[Path]:
    """Fuse ``pairs`` into ``<out_dir>/<id>.png`` (written atomically) by the test routine ``compat``
    (:data:`FUSE_ROUTINES`); returns the paths written.

    Each PNG records ``checkpoint_sha256``. Outputs already made by that checkpoint are skipped, so
    an interrupted run resumes, unless ``overwrite``. Outputs made by another checkpoint (or whose
    maker is not recorded) are re-fused with ``overwrite`` or ``replace_other``, and otherwise raise
    DataError; images of other ids made by another checkpoint are deleted with ``replace_other``
    and otherwise raise DataError. Images over ``max_pixels`` raise DataError naming the file; a
    pair whose forward pass would need more than ``memory_budget_bytes`` (None: half of what
    ``device`` has free) is fused in tiles; one with a side over ``split_above`` in four overlapping parts
    (occo.nn.split). ``shard`` fuses its share of ``pairs`` only (:func:`_pending`)."""
    out_dir = Path(out_dir)
    device = torch.device(device)
    if memory_budget_bytes is None:
        memory_budget_bytes = memory_budget("auto", "memory budget", device)
    todo = _pending(out_dir, pairs, checkpoint_sha256, overwrite=overwrite, replace_other=replace_other, shard=shard)
    net = network(model.arch)
    batches = _batches_by_size(todo, batch_size, memory_budget_bytes // net.bytes_per_pixel(model.arch), max_pixels)
    text = {CHECKPOINT_KEY: checkpoint_sha256}
    routine = FUSE_ROUTINES[compat]
    rule = routine.rule or model.arch.compat
    written = []
    with tqdm(total=len(todo), desc=f"fuse {out_dir.name}", unit="pair", dynamic_ncols=True) as bar:
        for batch in batches:
            loaded = [_load(p, max_pixels) for p in batch]
            ir = torch.stack([ir for ir, _ in loaded])
            vi_y = torch.stack([vi[:1] for _, vi in loaded])
            fused = _fuse_batch(
                model,
                batch,
                ir=ir,
                vi=vi_y,
                device=device,
                budget=memory_budget_bytes,
                rule=rule,
                split_above=split_above,
            )
            for p, (_, vi), y in zip(batch, loaded, fused):
                path = out_dir / f"{p.id}.png"
                save_png(path, colourise(y, vi), text=text, quantise=routine.quantise)
                written.append(path)
            bar.update(len(batch))
    log.info("wrote %d fused images to %s", len(written), out_dir)
    return written


def _pending(
    out_dir: Path, pairs: list[Pair], checkpoint_sha256: str, *, overwrite: bool, replace_other: bool, shard: Shard
) -> list[Pair]:
    """The pairs of ``shard``'s share (in id order) to fuse: all with ``overwrite``, else those without an output
    of this checkpoint (the makers of every pair's output checked first, :func:`_check_makers`; only the share's
    own outputs are read whole)."""
    share = shard.take(sorted(pairs, key=lambda p: p.id))
    verify = set() if overwrite else {out_dir / f"{p.id}.png" for p in share}  # overwrite fuses them all again
    stale = set(
        _check_makers(
            out_dir, pairs, checkpoint_sha256, overwrite=overwrite, replace_other=replace_other, verify=verify
        )
    )
    todo = [p for p in share if overwrite or out_dir / f"{p.id}.png" in stale or not (out_dir / f"{p.id}.png").exists()]
    if len(todo) < len(share):
        log.info("%s: %d of %d outputs exist (this checkpoint's), skipped", out_dir, len(share) - len(todo), len(share))
    return todo


def _fuse_batch(
    model: nn.Module,
    batch: list[Pair],
    *,
    ir: torch.Tensor,
    vi: torch.Tensor,
    device: torch.device,
    budget: int,
    rule: str,
    split_above: int | None,
) -> torch.Tensor:
    """Fused Y (B,1,H,W) on the CPU of a batch of same-size pairs by the inference rule ``rule``: in RFN-Nest's
    four parts when a side is over ``split_above``, else in one pass when the batch fits the budget, else (a
    batch of one) tile by tile."""
    net = network(model.arch)
    if split_above is not None and max(ir.shape[-2:]) > split_above:
        return torch.cat(
            [
                net.finish(raw_in_parts(lambda a, b, p=p: _raw(net, model, p, a, b, device, budget, rule), ir=i, vi=v))
                for p, i, v in zip(batch, ir.split(1), vi.split(1))
            ]
        )
    if ir.shape[0] * ir[0].numel() * net.bytes_per_pixel(model.arch) <= budget:
        return fuse_luminance(model, ir=ir.to(device), vi=vi.to(device), rule=rule).cpu()
    return net.finish(_raw(net, model, batch[0], ir, vi, device, budget, rule))


def _raw(
    net: Network,
    model: nn.Module,
    pair: Pair,
    ir: torch.Tensor,
    vi: torch.Tensor,
    device: torch.device,
    budget: int,
    rule: str,
) -> torch.Tensor:
    """The raw output of one pair (a batch of one, or a part of it) on the CPU: in one pass when it fits the
    budget, else tile by tile; DataError naming the pair when the network cannot be tiled."""
    need = ir[0].numel() * net.bytes_per_pixel(model.arch)
    if need <= budget:
        return net.raw(model, ir=ir.to(device), vi=vi.to(device), rule=rule).cpu()
    try:
        raw = net.raw_tiled(model, ir=ir, vi=vi, budget=budget, device=device, rule=rule)
    except ValueError as exc:
        raise DataError(
            f"{pair.ir} needs about {need / GIB:.3g} GB in one pass, over the memory budget of "
            f"{budget / GIB:.3g} GB; cannot fuse it in tiles: {exc}"
        ) from exc
    log.info(
        "%s: about %.3g GB in one pass, over the %.3g GB budget; fused in tiles", pair.ir, need / GIB, budget / GIB
    )
    return raw


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
    if published := [m for m in cfg.extra_checkpoints if (root / PUBLISHED / m).exists()]:
        raise DataError(
            f"fuse.extra_checkpoints.{published[0]}: {root / PUBLISHED / published[0]} holds published results of that "
            "name; rename the entry"
        )
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
                compat=cfg.compat,
                split_above=cfg.split_above,
                shard=shard,
            )
            folders.append(out)
    return folders


def fuse_stage(cfg: Fuse, root: Path) -> ShardedStage:
    """Stage `fuse` as shards (occo/pipeline/shard.py): each fuses its share of the pairs; nothing to merge."""
    return ShardedStage(lambda shard: run_fuse(cfg, root, shard))
