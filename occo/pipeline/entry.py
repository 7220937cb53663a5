"""What every DVC stage script shares: its command line, logging, typed params and one-line errors."""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from occo.config import ParamsError, load_params
from occo.pipeline.memory import peak_usage
from occo.pipeline.process import process_seconds, skip_final_collection
from occo.pipeline.shard import ShardedStage, count_flag, run_sharded, shard_flag


def params_digest(path: Path) -> str | None:
    """sha256 of the params file's bytes (None when it cannot be read: load_params says why)."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def run_stage(
    doc: str,
    script: str,
    argv: list[str] | None,
    run: Callable[[Any, Path, argparse.Namespace], object],
    *,
    section: str | None = None,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    errors: tuple[type[Exception], ...] = (),
) -> None:
    """Parse ``--params`` and ``--root`` (default: the repo holding ``stages/<script>``), set up logging,
    read the whole params file into ``occo.config.Params`` and call ``run(cfg, root, args)``, with
    ``cfg.<section>`` when a section is named.

    A params file that breaks the schema ends the stage before ``run`` with one line per problem
    (``<stage>: <file> <key> = <value>: <what is allowed>``). Bad input met while running (the library's
    ``ValueError``s such as ``DataError`` and ``CheckpointError``, and ``OSError``s: a missing or
    unwritable file) ends it with one line too, never a traceback, as do the stage's own ``errors``. A params
    file that changed while ``run`` ran (a second ``dvc exp run`` in the same workspace writes its ``-S`` values
    there) fails the stage, so DVC never records values other than those its outputs were made from.
    """
    name = Path(script).stem
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument(
        "--root",
        type=Path,
        default=Path(script).resolve().parents[1],
        help="repository root: outputs go under it, relative paths start here",
    )
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    skip_final_collection()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        read = params_digest(args.params)
        cfg = load_params(args.params)
    except ParamsError as err:
        raise SystemExit("\n".join(f"{name}: {problem}" for problem in err.problems)) from None
    start = time.perf_counter()
    try:
        run(cfg if section is None else getattr(cfg, section), args.root.resolve(), args)
    except (ValueError, OSError, *errors) as err:
        raise SystemExit(f"{name}: {err}") from None
    if params_digest(args.params) != read:
        raise SystemExit(
            f"{name}: {args.params} changed while this stage ran (another `dvc exp run` in this workspace?): its "
            "outputs were made from the previous values, which DVC would not record beside them; run again, one "
            "experiment at a time, or queue them (dvc exp run --queue -S ...; dvc queue start)"
        )
    # bench/pipeline.py and bench/rehearse.py read this line: each stage's time and peak memory in a `dvc exp run`
    total = process_seconds()
    logging.getLogger("occo.stage").info(
        "stage %s done in %.1f s (%s); %s",
        name,
        time.perf_counter() - start,
        "process time unknown" if total is None else f"{total:.1f} s since the process started",
        peak_usage(),
    )


def run_sharded_stage(
    doc: str,
    script: str,
    argv: list[str] | None,
    stage: Callable[[Any, Path, argparse.Namespace], ShardedStage],
    *,
    section: str,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> None:
    """:func:`run_stage` for a stage whose pairs split over processes (occo/pipeline/shard.py): it gains
    ``--shard i/n`` and ``--merge n``, and ``OCCO_PROCS=N`` or torchrun spread it over N processes."""

    def arguments(parser: argparse.ArgumentParser) -> None:
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--shard", type=shard_flag, help="work on shard i of n (i/n) only; --merge n joins them")
        group.add_argument("--merge", type=count_flag, metavar="N", help="merge the work of shards 0/N to N-1/N")
        if add_arguments is not None:
            add_arguments(parser)

    child = [sys.executable, str(Path(script).resolve()), *(sys.argv[1:] if argv is None else argv)]
    run_stage(
        doc,
        script,
        argv,
        lambda cfg, root, args: run_sharded(stage(cfg, root, args), shard=args.shard, merge=args.merge, child=child),
        section=section,
        add_arguments=arguments,
    )
