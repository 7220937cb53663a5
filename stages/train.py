"""DVC stage `train`: train the OCCO network on `train.dataset`/`train.split` (see occo/train/loop.py).

Reads params omega1..omega6, `arch`, `loss`, `ablation` and `train`; data/raw/<dataset>/<split> with
masks from data/masks/<dataset>/<split> (or the split's own masks/ folder). Writes
  models/checkpoints/last.pt   resumable checkpoint (persistent: a re-run resumes from it),
  models/occo.pt               final weights (occo.nn.load_model),
  dvclive/train/               loss terms and lr per logged step.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import yaml

from occo.data import DataError
from occo.train import train


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda', 'cuda:1', ...")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    params = yaml.safe_load(args.params.read_text(encoding="utf-8"))
    try:
        train(params, args.root.resolve(), device=args.device)
    except DataError as err:  # bad input or missing VGG weights: one line naming the file
        raise SystemExit(f"train: {err}") from None


if __name__ == "__main__":
    main()
