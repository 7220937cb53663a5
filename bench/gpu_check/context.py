"""What every check gets (its :class:`Context`) and gives back (:class:`Row` results), and what several share."""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from occo.config import Params

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"

PASS, FAIL, TIMEOUT, DONE, SKIP = "PASS", "FAIL", "TIMEOUT", "DONE", "SKIP"
"""Row status: a criterion held / did not / no result in time / measured (no criterion) / not run (with why)."""

T = TypeVar("T")


@dataclass(frozen=True)
class Context:
    """One check's view of the run: where it runs, how big, where its files go and when it must be done."""

    device: str  # "cuda" (a GPU run) or "cpu" (the dry run)
    work: Path  # scratch folder shared by the checks of one run (removed at the end)
    params: Path  # params.yaml the checks start from
    shared: Path = SHARED  # ../shared: real pairs (checks fall back to synthetic pairs without it)
    deadline: float = float("inf")  # time.time() by which the check must have finished

    @property
    def dry(self) -> bool:
        return self.device != "cuda"

    def pick(self, gpu: T, dry: T) -> T:
        """``gpu`` on a GPU run, ``dry`` in the CPU dry run (tiny sizes)."""
        return dry if self.dry else gpu

    def seconds_left(self) -> float:
        return self.deadline - time.time()

    def load_params(self) -> Params:
        """params.yaml with a random-init VGG19 for the loss (no weight file); in the dry run a narrow network."""
        from bench.train import random_vgg_params
        from occo.config import override

        params = random_vgg_params(self.params)
        if self.dry:  # the tests' narrow network: the same code paths in seconds on a CPU
            params = override(params, {"arch.widths": [8, 8, 8, 8], "arch.heads": [1, 1, 1, 1]})
        return params

    def to_json(self) -> str:
        return json.dumps(
            {**asdict(self), "work": str(self.work), "params": str(self.params), "shared": str(self.shared)}
        )

    @classmethod
    def from_json(cls, text: str) -> Context:
        raw = json.loads(text)
        return cls(
            device=raw["device"],
            work=Path(raw["work"]),
            params=Path(raw["params"]),
            shared=Path(raw["shared"]),
            deadline=float(raw["deadline"]),
        )


@dataclass
class Row:
    """One line of the report: what was checked, its status, its figures in words and as numbers."""

    name: str
    status: str
    summary: str
    figures: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: dict) -> Row:
        return cls(raw["name"], raw["status"], raw["summary"], dict(raw.get("figures", {})))


def one_line(err: BaseException) -> str:
    """``Type: message`` on one line, at most 240 characters."""
    return f"{type(err).__name__}: {' '.join(str(err).split())}"[:240]


def attempt(name: str, fn: Callable[[], Row]) -> Row:
    """``fn()``, or a FAIL row with the one-line reason when it raises (``SystemExit`` of a CLI included)."""
    try:
        return fn()
    except (Exception, SystemExit) as err:
        traceback.print_exc()
        return Row(name, FAIL, one_line(err))


def reset_peak(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_mib(device: str) -> float | None:
    """Peak CUDA memory allocated since :func:`reset_peak`, MiB; None on the CPU."""
    import torch

    return torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None


def mib(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f} MiB"


def real_pairs(ctx: Context, dataset: str, n: int) -> list:
    """The first ``n`` pairs of ``../shared/datasets/<dataset>`` (by id); [] when it is absent."""
    from occo.data import find_pairs

    folder = ctx.shared / "datasets" / dataset
    if not (folder / "ir").is_dir():
        return []
    return find_pairs(ir=folder / "ir", vi=folder / "vi")[:n]


def sample_pairs(ctx: Context, n_per_dataset: int) -> tuple[list, str]:
    """``n_per_dataset`` real TNO and MSRS pairs, or synthetic 640x480 pairs when ../shared is absent; and a
    description."""
    from occo.data import find_pairs, make_synthetic

    pairs = real_pairs(ctx, "TNO", n_per_dataset) + real_pairs(ctx, "MSRS", n_per_dataset)
    if pairs:
        return pairs, f"{len(pairs)} real pairs (TNO, MSRS: {', '.join(p.id for p in pairs)})"
    folder = ctx.work / "synthetic_pairs"
    if not (folder / "train").is_dir():
        make_synthetic(folder, n_train=2 * n_per_dataset, n_test=0, height=480, width=640)
    pairs = find_pairs(ir=folder / "train" / "ir", vi=folder / "train" / "vi")
    return pairs, f"{len(pairs)} synthetic 640x480 pairs ({ctx.shared} not found)"
