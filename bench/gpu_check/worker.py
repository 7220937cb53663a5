"""One check in its own process: ``python -m bench.gpu_check.worker --target module:function ...``.

The target is a generator ``fn(ctx, **kwargs)`` yielding :class:`Row` results; the result file is
rewritten after every row, so a check killed at its time limit still hands back the rows it finished.
An exception ends the check with a FAIL row carrying its one-line reason (traceback on stderr).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
import traceback
from dataclasses import asdict
from pathlib import Path

from bench.gpu_check.context import FAIL, Context, Row, one_line


def write_rows(path: Path, rows: list[Row]) -> None:
    from occo.data import write_text_atomic

    write_text_atomic(path, json.dumps([asdict(r) for r in rows], indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="module:function, a generator of Row results")
    parser.add_argument("--name", required=True, help="row name of a failure before the first row")
    parser.add_argument("--context", required=True, help="the Context as JSON")
    parser.add_argument("--kwargs", default="{}", help="keyword arguments of the target, as JSON")
    parser.add_argument("--result", type=Path, required=True, help="where the rows go (JSON list)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    rows: list[Row] = []
    try:
        module, _, function = args.target.partition(":")
        check = getattr(importlib.import_module(module), function)
        for row in check(Context.from_json(args.context), **json.loads(args.kwargs)):
            rows.append(row)
            write_rows(args.result, rows)
            print(f"gpu-check row: {row.name}: {row.status}: {row.summary}", file=sys.stderr, flush=True)
    except (Exception, SystemExit) as err:
        traceback.print_exc()
        rows.append(Row(args.name, FAIL, one_line(err)))
        write_rows(args.result, rows)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
