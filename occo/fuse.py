"""Fuse infrared/visible pairs at full resolution into 8-bit PNGs.

The network fuses luminance: infrared (grey, or the Y of an RGB infrared image) with the visible
image's BT.601 Y; colour comes back from the visible image's Cb/Cr (a grey visible image gives a
grey result). Same-size pairs are fused together in batches.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

import torch
from PIL import Image
from torch import nn
from tqdm import tqdm

from occo.data.color import rgb_to_ycbcr, ycbcr_to_rgb
from occo.data.io import DataError, save_png, to_float
from occo.data.pairs import Pair, load_pair
from occo.nn import fuse_y

log = logging.getLogger(__name__)


def _size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as im:
            return im.size
    except OSError as err:
        raise DataError(f"cannot read image {path}: {err}") from err


def _load(pair: Pair) -> tuple[torch.Tensor, torch.Tensor]:
    """Infrared luminance (1,H,W) and visible image in YCbCr (3,H,W) or grey (1,H,W)."""
    ir, vi = (to_float(a) for a in load_pair(pair))
    ir = rgb_to_ycbcr(ir)[:1] if ir.shape[0] == 3 else ir
    return ir, rgb_to_ycbcr(vi) if vi.shape[0] == 3 else vi


def colourise(y: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
    """Fused Y (1,H,W) with the chroma of ``vi`` (YCbCr (3,H,W) → RGB in [0,1]; grey (1,H,W) → grey)."""
    if vi.shape[0] == 1:
        return y
    return ycbcr_to_rgb(torch.cat([y, vi[1:]])).clamp(0, 1)


def fuse_folder(
    model: nn.Module,
    pairs: list[Pair],
    out_dir: str | Path,
    *,
    device: str | torch.device,
    batch_size: int = 1,
    overwrite: bool = False,
) -> list[Path]:
    """Fuse ``pairs`` into ``<out_dir>/<id>.png`` (written atomically); returns the paths written.

    Ids whose output exists are skipped unless ``overwrite``, so an interrupted run resumes.
    """
    out_dir = Path(out_dir)
    todo = [p for p in pairs if overwrite or not (out_dir / f"{p.id}.png").exists()]
    if len(todo) < len(pairs):
        log.info("%s: %d of %d outputs exist, skipped", out_dir, len(pairs) - len(todo), len(pairs))
    by_size: dict[tuple[int, int], list[Pair]] = defaultdict(list)
    for p in todo:
        by_size[_size(p.ir)].append(p)
    batches = [group[i : i + batch_size] for group in by_size.values() for i in range(0, len(group), batch_size)]
    written = []
    with tqdm(total=len(todo), desc=f"fuse {out_dir.name}", unit="pair", dynamic_ncols=True) as bar:
        for batch in batches:
            loaded = [_load(p) for p in batch]
            ir = torch.stack([ir for ir, _ in loaded]).to(device)
            vi_y = torch.stack([vi[:1] for _, vi in loaded]).to(device)
            fused = fuse_y(model, ir, vi_y).cpu()
            for p, (_, vi), y in zip(batch, loaded, fused):
                path = out_dir / f"{p.id}.png"
                save_png(path, colourise(y, vi))
                written.append(path)
            bar.update(len(batch))
    log.info("wrote %d fused images to %s", len(written), out_dir)
    return written
