"""DVC stage `train`: train the network `arch.name` names (OCCO's FIFN, or RFN-Nest) on `train.dataset`/`train.split`
with the loss `loss.terms` assembles (see occo/train/loop.py, occo/train/stages.py).

Reads params omega1..omega6, `alpha`, `beta`, `arch`, `loss`, `ablation` and `train`; data/raw/<dataset>/<split>
with masks from data/masks/<dataset>/<split> (or the split's own masks/ folder); for RFN-Nest, the authors'
published auto-encoder (and RFN, `train.stage: published`) that the inputs stage fetched. Writes
  models/checkpoints/last.pt   resumable checkpoint (persistent: a re-run resumes from it),
  models/occo.pt               final weights (occo.nn.load_model),
  dvclive/train/               loss terms and lr per logged step.
"""

from __future__ import annotations

from occo.pipeline.device import device_flag
from occo.pipeline.entry import run_stage
from occo.train import train
from occo.train.loop import TrainingStopped


def main(argv: list[str] | None = None) -> None:
    run_stage(  # DataError: bad input, an unreadable checkpoint or missing VGG weights; TrainingStopped: diverged
        __doc__,
        __file__,
        argv,
        lambda cfg, root, args: train(cfg, root, device=args.device),
        errors=(TrainingStopped,),
        add_arguments=lambda p: p.add_argument(
            "--device", type=device_flag, default="auto", help="'auto', 'cpu', 'cuda', 'cuda:1', ..."
        ),
    )


if __name__ == "__main__":
    main()
