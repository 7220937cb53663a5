"""What every DVC stage script shares: its command line, logging, params and one-line errors."""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from occo.data.io import DataError


def run_stage(
    doc: str,
    script: str,
    argv: list[str] | None,
    run: Callable[[dict, Path, argparse.Namespace], object],
    *,
    section: str | None = None,
    errors: tuple[type[BaseException], ...] = (DataError,),
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> None:
    """Parse ``--params`` and ``--root`` (default: the repo holding ``stages/<script>``), set up logging,
    and call ``run(params, root, args)`` — with ``params[section]`` when a section is named.

    Bad input (``errors``) ends the stage with one line naming the file instead of a traceback.
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
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    params = yaml.safe_load(args.params.read_text(encoding="utf-8")) or {}
    if section is not None:
        if section not in params:
            raise SystemExit(f"{name}: {args.params} has no '{section}' section")
        params = params[section]
    start = time.perf_counter()
    try:
        run(params, args.root.resolve(), args)
    except errors as err:
        raise SystemExit(f"{name}: {err}") from None
    # bench/pipeline.py reads this line to time each stage of a `dvc repro` / `dvc exp run`
    logging.getLogger("occo.stage").info("stage %s done in %.1f s", name, time.perf_counter() - start)
