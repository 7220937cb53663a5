"""The `occo` command: user-facing tools over the library (the DVC stages live in stages/)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from occo.data.io import DataError, write_text_atomic
from occo.data.pairs import find_pairs
from occo.device import resolve_device
from occo.metrics.evaluate import BASELINES, evaluate_pairs, markdown_table, summarise
from occo.nn.checkpoint import CheckpointError
from occo.metrics.suite import VARIANTS


def _batch_size_arg(text: str) -> int | str:
    """argparse type of ``--batch-size``: 'auto' or a positive integer."""
    if text == "auto":
        return text
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be 'auto' or a positive integer, got {text!r}")
    return int(text)


def _device_arg(text: str) -> str:
    """argparse type of ``--device``: 'auto' or a torch device string."""
    if text != "auto":
        try:
            torch.device(text)
        except (RuntimeError, ValueError):
            raise argparse.ArgumentTypeError(f"{text!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    return text


def _evaluate(args: argparse.Namespace) -> None:
    for flag, path in (("--ir", args.ir), ("--vi", args.vi), *(("--fused", p) for p in args.fused)):
        if path.is_file():
            raise SystemExit(f"error: {flag} takes a folder of images named by pair id, got the file {path}")
    if args.out is not None and (args.out.is_dir() or args.out.suffix != ".json"):
        raise SystemExit(f"error: --out must name a .json file (the per-image CSV goes beside it), got {args.out}"
                         + (" (a folder)" if args.out.is_dir() else ""))
    if resolve_device(args.device).type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"error: --device {args.device}: CUDA is not available here; use auto or cpu")
    baselines = [] if args.baselines is None else args.baselines or list(BASELINES)  # --baselines alone: all
    methods: dict[str, Path | None] = {name: None for name in baselines}
    for folder in args.fused:
        if folder.name in methods:
            raise SystemExit(f"error: two methods would be named {folder.name!r}; rename one of the folders")
        methods[folder.name] = folder
    if not methods:
        raise SystemExit("error: nothing to score: give --fused FOLDER (repeatable) and/or --baselines [NAME ...]")
    pairs = find_pairs(args.ir, args.vi)
    per_image = evaluate_pairs(
        pairs, methods, variant=args.variant, device=args.device, batch_size=args.batch_size
    )
    summary = summarise(per_image)
    print(markdown_table(summary, title=f"{args.vi.parent.name or args.vi} ({len(pairs)} pairs, {args.variant})"))
    if args.out is not None:
        csv_path = args.out.with_suffix(".csv")
        write_text_atomic(args.out, json.dumps(summary, indent=2) + "\n")
        write_text_atomic(csv_path, per_image.to_csv(index=False))
        logging.getLogger("occo").info("wrote %s and %s", args.out, csv_path)


def _convert_checkpoint(args: argparse.Namespace) -> None:
    from occo.nn.checkpoint import convert_checkpoint  # torch model code: only for this command

    print(convert_checkpoint(args.src, args.dst))


def _fuse(args: argparse.Namespace) -> None:
    from occo.data.pairs import Pair
    from occo.fuse import fuse_folder  # torch model code: only for this command
    from occo.device import resolve_batch_size, resolve_device
    from occo.nn import load_model

    if args.ir.is_file() != args.vi.is_file():
        raise SystemExit("--ir and --vi must both be folders or both be image files")
    if args.ir.is_file():  # one pair: --out is the output file, or a folder to hold <infrared stem>.png
        out = args.out if args.out.suffix.lower() == ".png" else args.out / f"{args.ir.stem}.png"
        pairs, out_dir = [Pair(id=out.stem, ir=args.ir, vi=args.vi)], out.parent
    else:
        pairs, out_dir = find_pairs(args.ir, args.vi), args.out
    device = resolve_device(args.device)
    model, _ = load_model(args.checkpoint, device)
    batch_size = resolve_batch_size(args.batch_size, device)
    for path in fuse_folder(model, pairs, out_dir, device=device, batch_size=batch_size, overwrite=args.overwrite):
        print(path)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="occo", description="OCCO infrared-visible image fusion tools")
    sub = parser.add_subparsers(dest="command", required=True)
    ev = sub.add_parser(
        "evaluate",
        help="score folders of fused images against their infrared/visible sources",
        description="Score fused images (files named like the source pairs) with EN, SF, AG, CC, SD, MI, "
        "VIF, Qabf, SSIM, SCD and PSNR; print a table; optionally write the means (JSON) and the "
        "per-image values (CSV beside the JSON).",
    )
    ev.add_argument("--ir", type=Path, required=True, help="folder of infrared images")
    ev.add_argument("--vi", type=Path, required=True, help="folder of visible images")
    ev.add_argument("--fused", type=Path, action="append", default=[], help="folder of fused images (repeatable)")
    ev.add_argument("--baselines", nargs="*", choices=list(BASELINES), metavar="NAME",
                    help=f"also score pixel baselines: all ({', '.join(BASELINES)}) when given alone, or those named")
    ev.add_argument("--variant", default="matlab", choices=list(VARIANTS), help="metric convention (docs/metrics.md)")
    ev.add_argument("--device", default="auto", type=_device_arg, help="'auto', 'cpu', 'cuda', 'cuda:1', ...")
    ev.add_argument("--batch-size", default="auto", type=_batch_size_arg,
                    help="same-size pairs scored together: 'auto' (1 on CPU, 8 on CUDA) or N")
    ev.add_argument("--out", type=Path, help="write the means here (a .json file) and per-image values beside it (.csv)")
    ev.set_defaults(func=_evaluate)
    cv = sub.add_parser(
        "convert-checkpoint",
        help="convert the public OCCO checkpoint (occo.pth) to ours (arch.compat=official)",
        description="Map every key of the authors' released checkpoint onto occo's network and write a "
        "checkpoint that carries its architecture config, so `occo fuse --checkpoint DST` needs no flag.",
    )
    cv.add_argument("src", type=Path, help="public checkpoint, e.g. occo.pth (dict with key 'state_dict')")
    cv.add_argument("dst", type=Path, help="where to write our checkpoint")
    cv.set_defaults(func=_convert_checkpoint)
    fu = sub.add_parser(
        "fuse",
        help="fuse infrared/visible pairs (two folders, or two files) with a trained checkpoint",
        description="Fuse the luminance with the network of --checkpoint and restore colour from the visible "
        "image; writes 8-bit PNGs named by pair id and skips outputs that exist (unless --overwrite).",
    )
    fu.add_argument("--ir", type=Path, required=True, help="infrared folder or image file")
    fu.add_argument("--vi", type=Path, required=True, help="visible folder or image file")
    fu.add_argument("--out", type=Path, required=True, help="output folder (or .png file for a single pair)")
    fu.add_argument("--checkpoint", type=Path, required=True, help="occo checkpoint (models/occo.pt or converted)")
    fu.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda', 'cuda:1', ...")
    fu.add_argument("--batch-size", default="auto", help="same-size pairs fused together: 'auto' (1 on CPU, 8 on CUDA) or N")
    fu.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    fu.set_defaults(func=_fuse)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        args.func(args)
    except (DataError, CheckpointError, FileNotFoundError) as err:
        raise SystemExit(f"error: {err}") from None
