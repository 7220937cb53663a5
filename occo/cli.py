"""The `occo` command: user-facing tools over the library (the DVC stages live in stages/)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import NoReturn

from occo.config.types import PositiveInt
from occo.data.io import IMAGE_EXTS, MAX_PIXELS, write_text_atomic
from occo.data.pairs import find_pairs
from occo.metrics.evaluate import BASELINES, fusion_table, rows_to_csv, score_pairs, summarise
from occo.metrics.suite import VARIANTS
from occo.pipeline.device import batch_size_flag, device_flag
from occo.pipeline.flags import max_pixels_flag, schema_flag, split_above_flag
from occo.pipeline.process import skip_final_collection


def _evaluate(args: argparse.Namespace) -> None:
    for flag, path in (("--ir", args.ir), ("--vi", args.vi), *(("--fused", p) for p in args.fused)):
        if path.is_file():
            raise SystemExit(f"{flag} takes a folder of images named by pair id, got the file {path}")
    baselines = [] if args.baselines is None else args.baselines or list(BASELINES)  # --baselines alone: all
    methods: dict[str, Path | None] = {name: None for name in baselines}
    for folder in args.fused:
        if folder.name in methods:
            raise SystemExit(f"two methods would be named {folder.name!r}; rename one of the folders")
        methods[folder.name] = folder
    if not methods:
        raise SystemExit("nothing to score: give --fused FOLDER (repeatable) and/or --baselines [NAME ...]")
    pairs = find_pairs(ir=args.ir, vi=args.vi)
    per_image = score_pairs(pairs, methods, variant=args.variant, device=args.device, batch_size=args.batch_size)
    summary = summarise(per_image)
    print(fusion_table(summary, title=f"{args.vi.parent.name or args.vi} ({len(pairs)} pairs, {args.variant})"))
    if args.out is not None:
        csv_path = args.out.with_suffix(".csv")
        write_text_atomic(args.out, json.dumps(summary, indent=2) + "\n")
        write_text_atomic(csv_path, rows_to_csv(per_image))
        logging.getLogger("occo").info("wrote %s and %s", args.out, csv_path)


def _convert_checkpoint(args: argparse.Namespace) -> None:
    from occo.nn.checkpoint import convert_checkpoint  # torch model code: only for this command
    from occo.nn.rfn_nest.published import convert_rfn_nest

    wanted = CONVERTED_FILES[args.arch]
    if len(args.files) != len(wanted) + 1:
        raise SystemExit(f"--arch {args.arch} converts {' '.join(wanted)} into OUT: give {len(wanted) + 1} paths")
    *sources, dst = args.files
    print(convert_checkpoint(*sources, dst) if args.arch == "fifn" else convert_rfn_nest(*sources, dst))


CONVERTED_FILES = {"fifn": ("OCCO_PTH",), "rfn_nest": ("NESTFUSE", "RFN")}
"""What `occo convert-checkpoint --arch` reads for each network, before OUT."""


def _apart(out: Path, inputs: dict[str, Path]) -> None:
    """An output folder may not be, contain or lie inside an input folder."""
    target = out.resolve()
    for flag, folder in inputs.items():
        source = folder.resolve()
        if target == source or source in target.parents or target in source.parents:
            raise SystemExit(
                f"--out {out} is, contains or lies inside {flag} {folder}: fused images would mix with "
                "(or replace) the sources; choose a separate folder"
            )


def _not_a_source(out: Path, inputs: dict[str, Path]) -> None:
    """An existing --out beside an input image that no occo checkpoint made may be a source: never replaced."""
    from occo.data.io import png_text
    from occo.nn.fuse import CHECKPOINT_KEY

    for flag, image in inputs.items():
        if out.exists() and out.resolve().parent == image.resolve().parent and png_text(out, CHECKPOINT_KEY) is None:
            raise SystemExit(
                f"--out {out} exists in the folder of {flag} and was not made by occo (no checkpoint recorded): it "
                "may be a source image, which is never replaced (even with --overwrite); choose another file"
            )


def _fuse(args: argparse.Namespace) -> None:
    from occo.data.io import sha256_file
    from occo.data.pairs import Pair
    from occo.nn import load_model
    from occo.nn.fuse import fuse_folder, memory_budget
    from occo.pipeline.device import resolve_batch_size, resolve_device

    for flag, path in (("--ir", args.ir), ("--vi", args.vi), ("--checkpoint", args.checkpoint)):
        if not path.exists():
            raise SystemExit(f"{flag} {path} does not exist")
    if args.ir.is_file() != args.vi.is_file():
        raise SystemExit("--ir and --vi must both be folders or both be image files")
    suffix = args.out.suffix.lower()  # never another image suffix: fused_out_flag refuses those
    if args.ir.is_file():  # one pair: --out is the output file, or a folder to hold <infrared stem>.png
        out = args.out if suffix == ".png" else args.out / f"{args.ir.stem}.png"
        if out.resolve() in (args.ir.resolve(), args.vi.resolve()):
            raise SystemExit(f"--out {out} is one of the input images; choose another file")
        _not_a_source(out, {"--ir": args.ir, "--vi": args.vi})
        pairs, out_dir = [Pair(id=out.stem, ir=args.ir, vi=args.vi)], out.parent
    else:
        if suffix == ".png":
            raise SystemExit(
                f"--out {args.out} names an image file, but --ir and --vi are folders: give a folder for --out"
            )
        _apart(args.out, {"--ir": args.ir, "--vi": args.vi})
        pairs, out_dir = find_pairs(ir=args.ir, vi=args.vi), args.out
    device = resolve_device(args.device, "--device")
    budget = memory_budget(args.memory_budget, "--memory-budget", device)
    model, _ = load_model(args.checkpoint, device)
    written = fuse_folder(
        model,
        pairs,
        out_dir,
        checkpoint_sha256=sha256_file(args.checkpoint),
        device=device,
        batch_size=resolve_batch_size(args.batch_size, device),
        overwrite=args.overwrite,
        max_pixels=args.max_pixels,
        memory_budget_bytes=budget,
        split_above=args.split_above,
    )
    for path in written:
        print(path)


def json_out_flag(value: str) -> Path:
    """argparse type of `occo evaluate --out`: a .json file, with the per-image CSV beside it; neither a folder."""
    path = Path(value)
    if path.suffix != ".json":
        raise argparse.ArgumentTypeError(f"{value!r}: name a .json file (the per-image .csv goes beside it)")
    for target in (path, path.with_suffix(".csv")):
        if target.is_dir():
            raise argparse.ArgumentTypeError(f"{value!r}: {target} is a folder; name a .json file to write")
    return path


def fused_out_flag(value: str) -> Path:
    """argparse type of `occo fuse --out`: a folder, or a .png file for one pair (the images are PNGs; any
    other image suffix would become a folder)."""
    path = Path(value)
    if path.suffix.lower() in set(IMAGE_EXTS) - {".png"}:
        raise argparse.ArgumentTypeError(f"{value!r}: fused images are PNGs; name a .png file or a folder")
    return path


def add_evaluate(sub: argparse._SubParsersAction) -> None:
    """`occo evaluate`: score folders of fused images."""
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
    ev.add_argument(
        "--baselines",
        nargs="*",
        choices=list(BASELINES),
        metavar="NAME",
        help=f"also score pixel baselines: all ({', '.join(BASELINES)}) when given alone, or those named",
    )
    ev.add_argument("--variant", default="matlab", choices=list(VARIANTS), help="metric convention (docs/metrics.md)")
    ev.add_argument("--device", type=device_flag, default="auto", help="'auto', 'cpu', 'cuda', 'cuda:1', ...")
    ev.add_argument(
        "--batch-size",
        type=batch_size_flag,
        default="auto",
        help="same-size pairs scored together: 'auto' (1 on CPU, 8 on CUDA) or N",
    )
    ev.add_argument(
        "--out", type=json_out_flag, help="write the means here (JSON) and per-image values beside it (CSV)"
    )
    ev.set_defaults(func=_evaluate)


def add_convert_checkpoint(sub: argparse._SubParsersAction) -> None:
    """`occo convert-checkpoint`: the public checkpoint in our format."""
    cv = sub.add_parser(
        "convert-checkpoint",
        help="convert published weights to an occo checkpoint: OCCO's occo.pth, or RFN-Nest's two files",
        description="Map every key of the authors' released weights onto occo's network and write a checkpoint "
        "that carries its architecture config, so `occo fuse --checkpoint OUT` needs no flag. "
        "--arch fifn: occo.pth OUT (arch.compat=official); --arch rfn_nest: NESTFUSE RFN OUT, the NestFuse "
        "auto-encoder (nestfuse_gray_1e2.model) and the RFN (Final_epoch_2_..._ssim_vi.model), each a .model file "
        "or the zip the authors publish it in.",
    )
    cv.add_argument("--arch", choices=list(CONVERTED_FILES), default="fifn", help="the network of the weights")
    cv.add_argument("files", type=Path, nargs="+", metavar="FILE", help="the published file(s), then OUT")
    cv.set_defaults(func=_convert_checkpoint)


def add_fuse(sub: argparse._SubParsersAction) -> None:
    """`occo fuse`: fuse pairs with a checkpoint."""
    fu = sub.add_parser(
        "fuse",
        help="fuse infrared/visible pairs (two folders, or two files) with a trained checkpoint",
        description="Fuse the luminance with the network of --checkpoint and restore colour from the visible "
        "image; writes 8-bit PNGs named by pair id, each recording the checkpoint's sha256. Outputs of this "
        "checkpoint that exist are skipped (unless --overwrite); those of another checkpoint are refused.",
    )
    fu.add_argument("--ir", type=Path, required=True, help="infrared folder or image file")
    fu.add_argument("--vi", type=Path, required=True, help="visible folder or image file")
    fu.add_argument("--out", type=fused_out_flag, required=True, help="output folder (or .png file for a single pair)")
    fu.add_argument("--checkpoint", type=Path, required=True, help="occo checkpoint (models/occo.pt or converted)")
    fu.add_argument("--device", type=device_flag, default="auto", help="'auto', 'cpu', 'cuda', 'cuda:1', ...")
    fu.add_argument(
        "--batch-size",
        type=batch_size_flag,
        default="auto",
        help="same-size pairs fused together: 'auto' (1 on CPU, 8 on CUDA) or N",
    )
    fu.add_argument(
        "--max-pixels",
        type=max_pixels_flag,
        default=MAX_PIXELS,
        help=f"refuse images with more pixels, read from the header (default {MAX_PIXELS:,})",
    )
    fu.add_argument(
        "--memory-budget",
        default="auto",
        metavar="GB",
        help="working memory of one forward pass, in GB, or 'auto' (half of what the device has free, "
        "the default); batches shrink to fit and larger images are fused in tiles, same result",
    )
    fu.add_argument(
        "--split-above",
        type=split_above_flag,
        metavar="PX",
        help="fuse images with a side over PX in four parts overlapping by 5 pixels, as RFN-Nest's test script "
        "does (512); default: whole images",
    )
    fu.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing outputs, also those made by another checkpoint (refused otherwise)",
    )
    fu.set_defaults(func=_fuse)


def _study(args: argparse.Namespace) -> None:
    from occo.pipeline.device import visible_gpus
    from occo.report.paper.grid import load_studies
    from occo.report.paper.reference import load_paper
    from occo.study.queue import queue_study, run_study
    from occo.study.show import show_study

    root = Path.cwd()
    if not (root / "dvc.yaml").is_file() or not (root / "params.yaml").is_file():
        raise SystemExit(f"run it in the workspace (the folder with dvc.yaml and params.yaml), not {root}")
    paper = load_paper()
    study = load_studies().get(args.name)
    rows = [r for r in (args.rows or "").split(",") if r]
    if args.queue:
        names = queue_study(study, root, rows, paper.settings)
        print(f"{len(names)} experiment(s) of {study.name}; start them: dvc queue start -j N (N workers, a GPU each)")
        return
    if args.run:
        run_study(study, root, rows, paper.settings, args.jobs or max(1, len(visible_gpus())))
    print(show_study(study, paper, root), end="")


def jobs_flag(value: str) -> int:
    """argparse type of ``occo study --jobs``: a positive number of queue workers."""
    return schema_flag(PositiveInt, value, "--jobs")


def add_study(sub: argparse._SubParsersAction) -> None:
    """`occo study`: one of the paper's studies as DVC experiments."""
    st = sub.add_parser(
        "study",
        help="queue, run or show one of the paper's studies (Tables 6-9, §4.5) as DVC experiments",
        description="The studies are defined in occo/report/paper/studies.yaml (docs/experiments.md). Rows already "
        "run from this commit, or queued, are not queued again. Without an action, --show.",
    )
    st.add_argument("name", help="the study: table6, table7, table8, table9, rfn_nest")
    action = st.add_mutually_exclusive_group()
    action.add_argument("--queue", action="store_true", help="queue one `dvc exp run` per row, named <study>-<row>")
    action.add_argument(
        "--run", action="store_true", help="queue, start --jobs queue workers, wait, then show the table"
    )
    action.add_argument("--show", action="store_true", help="ours beside the paper's table, from the experiments")
    st.add_argument("--rows", metavar="ROW,ROW", help="only these rows (their names in the study)")
    st.add_argument(
        "-j",
        "--jobs",
        type=jobs_flag,
        default=None,
        help="queue workers for --run (default: one per visible GPU, 1 without CUDA); each takes its own GPU",
    )
    st.set_defaults(func=_study)


COMMANDS = (add_evaluate, add_convert_checkpoint, add_fuse, add_study)
"""Each adds one subcommand (its flags and the function that runs it) to the parser."""


def build_parser() -> argparse.ArgumentParser:
    """The `occo` command line: one subcommand per entry of :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(prog="occo", description="OCCO infrared-visible image fusion tools")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


class CommandError(SystemExit):
    """A command stopped by bad input: its one line is on stderr; exit status 2, as argparse's usage errors."""

    def __init__(self, line: str) -> None:
        super().__init__(2)
        self.line = line

    def __str__(self) -> str:
        return self.line


def fail(command: str, message: object) -> NoReturn:
    """Print ``occo <command>: <message>`` to stderr and exit with status 2."""
    line = f"occo {command}: {message}"
    print(line, file=sys.stderr)
    raise CommandError(line)


def main(argv: list[str] | None = None) -> None:
    """Run one command; its bad input (DataError and other ValueErrors, OSError, its own SystemExit messages)
    ends it with one line ``occo <command>: ...`` and exit status 2, never a traceback."""
    args = build_parser().parse_args(argv)
    skip_final_collection()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        args.func(args)
    except (ValueError, OSError) as err:
        fail(args.command, err)
    except SystemExit as err:
        if isinstance(err.code, str):
            fail(args.command, err.code)
        raise


if __name__ == "__main__":
    main()
