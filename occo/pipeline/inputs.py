"""What the pipeline reads from outside itself: dataset sources, pretrained weights, files named in params.

dvc.yaml can declare a stage's code and data dependencies, but not the files that params point at: a
dataset's ``source`` folder or archive, a local checkpoint (``masks.sam_checkpoint``, ``detect.weights``,
…), published masks (``masks.import``), extra checkpoints (``fuse.extra_checkpoints``), other methods'
fused folders (``evaluate.external``), or a pretrained file the settings need from ``models/pretrained/``.
Those are optional, nullable or keyed by name. The ``inputs`` stage (always run, cheap) resolves every
one of them, downloads the pretrained files the settings need when they are absent, and writes one
manifest per consuming stage, ``data/inputs/<stage>.json``, with the size and sha256 of each. Each
stage depends on its manifest, so DVC re-runs it exactly when one of those files changes, and the
weights themselves live in ``models/pretrained/`` (or where a param points), which no stage deletes.

Anything missing is reported at once, each with the param that provides it, in one error.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from occo.config import DatasetSource, Params
from occo.config.types import VGG_LOSS_TERMS
from occo.data.io import DataError, sha256_file, write_text_atomic
from occo.fetch.datasets import REGISTRY_SOURCE, registry_problem, source_path, split_sizes
from occo.fetch.registry import full_split, load_registry
from occo.fetch.weights import (
    ENCODER_WEIGHTS,
    RFN_NEST_AUTOENCODER,
    RFN_NEST_RFN,
    VGG19,
    resolve_vgg19,
    resolve_weights,
)

log = logging.getLogger(__name__)

MANIFEST_DIR = Path("data/inputs")
HASH_CACHE = Path(".cache/occo/hashes.json")
SYNTHETIC = "synthetic"
PIPELINE_DATA = Path("data")
"""Paths under data/ are pipeline outputs, tracked by dvc.yaml deps; manifests skip them."""

STAGES = ("download", "masks", "train", "fuse", "evaluate", "detect", "segment")
SMALL_TRAINING_SET = 100
"""Fewer training pairs than this train nothing that means something (a slice such as ../shared's 2 FMB pairs)."""
SMALL_TEST_SET = 20
"""Fewer test pairs than this give downstream scores that mean nothing."""


class MissingInputsError(DataError):
    """One or more inputs are absent; the message lists every one with the param that provides it."""


@dataclass(frozen=True)
class Weights:
    """A pretrained file (or folder) a stage loads: registry entry, local-path param and its value."""

    stage: str
    name: str
    param: str
    local: str | None


@dataclass(frozen=True)
class Named:
    """A file or folder named by a param, read by ``stage``."""

    stage: str
    param: str
    path: str


# ----------------------------------------------------------------------------- what the params need


def needed_datasets(cfg: Params) -> set[str]:
    """Datasets some stage cannot do without: the training set, the detection and segmentation sets."""
    return {cfg.train.dataset, cfg.segment.dataset, *cfg.detect.run} - {SYNTHETIC}


def weight_needs(cfg: Params) -> list[Weights]:
    """The pretrained files the current settings load (none where a param asks for random init)."""
    needs: list[Weights] = []
    masks = cfg.masks
    generated = any(
        split not in masks.import_.get(dataset, {}) for dataset, splits in masks.datasets.items() for split in splits
    )
    if generated and masks.init == "pretrained":
        needs.append(Weights("masks", f"sam_{masks.sam_model}", "masks.sam_checkpoint", masks.sam_checkpoint))
        if masks.detector == "transformers":
            needs.append(Weights("masks", "grounding_dino_tiny_hf", "masks.hf_model", masks.hf_model))
        else:
            needs.append(Weights("masks", "groundingdino_swint_ogc", "masks.gdino_checkpoint", masks.gdino_checkpoint))
            needs.append(Weights("masks", "bert_base_uncased", "masks.text_encoder", masks.text_encoder))
    needs += train_weight_needs(cfg)
    detect = cfg.detect
    if detect.run and detect.pretrained:
        needs.append(Weights("detect", f"{detect.model}u", "detect.weights", detect.weights))
    segment = cfg.segment
    if segment.encoder_weights is not None:
        needs.append(Weights("segment", ENCODER_WEIGHTS[segment.encoder], "segment.weights", segment.weights))
    return needs


def train_weight_needs(cfg: Params) -> list[Weights]:
    """The pretrained files the train stage loads: the VGG19 of the loss terms that use it (unless random), and for
    RFN-Nest the authors' auto-encoder it starts from (``train.stage: fusion``) or both published files
    (``train.stage: published``, which trains nothing)."""
    train, needs = cfg.train, []
    trains = train.stage != "published"
    if trains and not train.vgg_random_init and VGG_LOSS_TERMS & set(cfg.loss.terms):
        needs.append(Weights("train", VGG19, "train.vgg_weights", train.vgg_weights))
    if cfg.arch.name == "rfn_nest" and train.stage in ("fusion", "published"):
        needs.append(Weights("train", RFN_NEST_AUTOENCODER, "train.autoencoder", train.autoencoder))
    if cfg.arch.name == "rfn_nest" and train.stage == "published":
        needs.append(Weights("train", RFN_NEST_RFN, "train.rfn_weights", train.rfn_weights))
    return needs


def named_paths(cfg: Params) -> list[Named]:
    """Every file or folder a param names outside the pipeline's own outputs (dataset sources excluded)."""
    named = [
        Named("masks", f"masks.import.{dataset}.{split}", folder)
        for dataset, splits in cfg.masks.import_.items()
        for split, folder in splits.items()
    ]
    named += [
        Named("fuse", f"fuse.extra_checkpoints.{method}", path) for method, path in cfg.fuse.extra_checkpoints.items()
    ]
    named += [
        Named("evaluate", f"evaluate.external.{method}.{dataset}", path)
        for method, per_dataset in cfg.evaluate.external.items()
        for dataset, path in per_dataset.items()
    ]
    return named


# ----------------------------------------------------------------------------- how much data the params use


def held_out(n: int, fraction: float) -> int:
    """How many of a split's ``n`` pairs are held out for testing when one split is both trained and tested on
    (``detect.datasets.<name>.val_fraction``): ``round(n·fraction)``, at least 1, at most ``n − 1``."""
    return min(n - 1, max(1, round(n * fraction)))


@dataclass(frozen=True)
class DataUse:
    """A split a stage trains or tests on, with the params that name it and the least that means something."""

    what: str  # the params naming the split, and what it is for
    dataset: str
    split: str
    minimum: int
    share: str = "all"  # "all", or "train"/"val" of a split divided by val_fraction
    fraction: float = 0.0
    absent: str = "its stage skips it"  # what happens when the split does not exist

    def count(self, n: int) -> int:
        """The pairs of an ``n``-pair split this use gets."""
        if self.share == "all":
            return n
        val = held_out(n, self.fraction)
        return val if self.share == "val" else n - val


def data_uses(cfg: Params) -> list[DataUse]:
    """The fusion network's training split and the detection and segmentation splits of the params."""
    train, seg = cfg.train, cfg.segment
    what = "train.dataset/train.split (the fusion network's training set)"
    uses = [DataUse(what, train.dataset, train.split, SMALL_TRAINING_SET, absent="the train stage will stop")]
    for name in cfg.detect.run:
        spec = cfg.detect.datasets[name]
        for role, split, minimum in (("train", spec.train, SMALL_TRAINING_SET), ("val", spec.val, SMALL_TEST_SET)):
            share = role if spec.train == spec.val else "all"
            what = f"detect.datasets.{name}.{role} (detection {'training' if role == 'train' else 'test'} set)"
            uses.append(DataUse(what, name, split, minimum, share, spec.val_fraction or 0.0))
    for what, split, minimum in (
        ("segment.train_split (segmentation training set)", seg.train_split, SMALL_TRAINING_SET),
        ("segment.test_split (segmentation test set)", seg.test_split, SMALL_TEST_SET),
    ):
        uses.append(DataUse(what, seg.dataset, split, minimum))
    return uses


def _sizes(cfg: Params, root: Path) -> dict[str, dict[str, int] | None]:
    """Pairs per split of every configured dataset, as the download stage would import them (None: not known)."""
    sizes: dict[str, dict[str, int] | None] = {
        name: split_sizes(name, entry, root) for name, entry in cfg.download.datasets.items()
    }
    if (syn := cfg.download.synthetic) is not None:
        sizes[SYNTHETIC] = {"train": syn.n_train, "test": syn.n_test}
    return sizes


def _fix(cfg: Params, dataset: str, *, absent: bool = False) -> str:
    """The param that gives ``dataset`` more pairs (``absent``: a split it lacks, which only another source has)."""
    entry = cfg.download.datasets.get(dataset)
    if dataset == SYNTHETIC or entry is None:
        return "download.synthetic" if dataset == SYNTHETIC else f"download.datasets.{dataset}.source"
    if entry.limit is not None and not absent:
        return f"download.datasets.{dataset}.limit (now {entry.limit})"
    return f"download.datasets.{dataset}.source (now {entry.source})"


def small_data(cfg: Params, root: Path) -> list[str]:
    """One line per split a stage trains or tests on that is too small to mean anything (or absent), with the
    param to fix; splits whose size cannot be told before importing (archives) are left out."""
    sizes, problems = _sizes(cfg, root), []
    for use in data_uses(cfg):
        have = sizes.get(use.dataset)
        if have is None:
            continue
        where = f"{use.what}: {use.dataset}/{use.split}"
        if use.split not in have:
            problems.append(
                f"{where} does not exist (the source has {', '.join(sorted(have)) or 'none'}); "
                f"{use.absent}: set {_fix(cfg, use.dataset, absent=True)}"
            )
        elif (n := use.count(have[use.split])) < use.minimum:
            full = full_split(use.dataset, use.split)
            whole = f" (the whole split: {full:,})" if full else ""
            problems.append(
                f"{where} has {n} pair{'s' if n != 1 else ''}{whole}, fewer than {use.minimum}: "
                f"set {_fix(cfg, use.dataset)}"
            )
    return problems


# ----------------------------------------------------------------------------- digests


class HashCache:
    """sha256 of files keyed by (path, size, mtime): a file is read again only when it changed (as DVC does)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._table: dict[str, list] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self._table = {}
        self._dirty = False

    def sha256(self, file: Path) -> str:
        stat = file.stat()
        key, stamp = str(file.resolve()), [stat.st_size, stat.st_mtime_ns]
        cached = self._table.get(key)
        if cached is not None and cached[:2] == stamp:
            return cached[2]
        digest = sha256_file(file)
        self._table[key] = [*stamp, digest]
        self._dirty = True
        return digest

    def save(self) -> None:
        if self._dirty:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.path, json.dumps(self._table, sort_keys=True))


def digest(path: Path, cache: HashCache) -> dict[str, Any]:
    """What a manifest records of one input path: size and sha256 of a file, or of a folder (its files'
    relative paths and hashes, sorted) with its file count; ``cache`` spares re-reading unchanged files.

    Unlike :func:`occo.pipeline.resume.digest_files` (one hash over a run's input files, keyed by role,
    for its resume identity), this describes a path as it is on disk, for DVC to watch.
    """
    if path.is_file():
        return {"size": path.stat().st_size, "sha256": cache.sha256(path)}
    tree = hashlib.sha256()
    size = count = 0
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = file.relative_to(path).as_posix()
        size += file.stat().st_size
        count += 1
        tree.update(f"{rel}\0{cache.sha256(file)}\n".encode())
    return {"files": count, "size": size, "sha256": tree.hexdigest()}


def _display(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path.resolve())


def _resolve(path: str | Path, root: Path) -> Path:
    path = Path(path)
    return path if path.is_absolute() else root / path


def _inside_pipeline_data(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to((root / PIPELINE_DATA).resolve())


# ----------------------------------------------------------------------------- resolution


def _dataset_problem(name: str, entry: DatasetSource, root: Path, datasets: Mapping[str, dict]) -> str | None:
    """Why dataset ``name`` cannot be imported as configured, or None."""
    source = entry.source
    if source == REGISTRY_SOURCE:
        problem = registry_problem(name, datasets)
        return None if problem is None else f"dataset {problem}"
    if not source_path(source, root).exists():
        return (
            f"dataset {name}: source {source} not found; set download.datasets.{name}.source to its folder or archive"
        )
    return None


Manifests = dict[str, dict[str, Any]]
"""``{stage: {param key: {path, size, sha256, …}}}``."""


def _dataset_inputs(cfg: Params, root: Path, cache: HashCache, manifests: Manifests, missing: list[str]) -> None:
    """Adds each local dataset source to the download manifest, and to ``missing`` each dataset a stage needs that
    cannot be imported as configured (an optional one nobody needs is only warned about)."""
    registry = load_registry()["datasets"]
    needed = needed_datasets(cfg)
    configured = cfg.download.datasets
    for name in sorted(needed - configured.keys()):
        missing.append(f"dataset {name}: not listed under download.datasets; add download.datasets.{name}.source")
    for name, entry in configured.items():
        problem = _dataset_problem(name, entry, root, registry)
        if problem is not None:
            if entry.optional and name not in needed:
                log.warning("optional %s; skipped", problem)
            else:
                missing.append(problem)
            continue
        if entry.source != REGISTRY_SOURCE:
            path = source_path(entry.source, root)
            manifests["download"][f"download.datasets.{name}.source"] = {
                "path": _display(path, root),
                **digest(path, cache),
            }


def _named_inputs(cfg: Params, root: Path, cache: HashCache, manifests: Manifests, missing: list[str]) -> None:
    """Adds each file or folder a param names to its stage's manifest (or to ``missing``); paths under data/ are
    pipeline outputs, left to dvc.yaml."""
    for item in named_paths(cfg):
        path = _resolve(item.path, root)
        if _inside_pipeline_data(path, root):
            continue
        if not path.exists():
            missing.append(f"{item.param}: {path} not found")
            continue
        manifests[item.stage][item.param] = {"path": _display(path, root), **digest(path, cache)}


def _weight_inputs(cfg: Params, root: Path, cache: HashCache, manifests: Manifests, missing: list[str]) -> None:
    """Adds each pretrained file the settings load to its stage's manifest, fetched when absent (or to ``missing``
    when it cannot be had)."""
    for need in weight_needs(cfg):
        try:
            if need.name == VGG19:
                path = resolve_vgg19(need.local, root=root, sha256_of=cache.sha256)
            else:
                path = resolve_weights(need.name, need.local, param=need.param, root=root, sha256_of=cache.sha256)
        except DataError as exc:
            missing.append(" ".join(str(exc).split()))
            continue
        manifests[need.stage][need.param] = {"weights": need.name, "path": _display(path, root), **digest(path, cache)}


def gather(cfg: Params, root: Path) -> Manifests:
    """The manifest of every consuming stage: ``{stage: {key: {path, size, sha256, …}}}``.

    Downloads absent pretrained files the settings need; present ones are checked as
    :func:`occo.fetch.weights.resolve_weights` checks them, with hashes from the cache (a multi-GB
    checkpoint is read once, not on every run). Raises
    MissingInputsError listing every missing dataset source, named file and pretrained file at once.
    """
    root = Path(root)
    cache = HashCache(root / HASH_CACHE)
    manifests: Manifests = {stage: {} for stage in STAGES}
    missing: list[str] = []
    for add in (_dataset_inputs, _named_inputs, _weight_inputs):
        add(cfg, root, cache, manifests, missing)
    cache.save()
    if missing:
        lines = "\n".join(f"  - {m}" for m in missing)
        raise MissingInputsError(f"{len(missing)} input(s) missing; provide them and re-run:\n{lines}")
    return manifests


def write_manifests(manifests: Mapping[str, Mapping[str, Any]], root: Path) -> list[Path]:
    """Write ``data/inputs/<stage>.json`` for every stage (an empty object when it reads nothing outside)."""
    folder = Path(root) / MANIFEST_DIR
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for stage, entries in manifests.items():
        path = folder / f"{stage}.json"
        write_text_atomic(path, json.dumps(entries, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written


def summary(manifests: Mapping[str, Mapping[str, Any]]) -> Iterable[str]:
    """One log line per stage: what it reads from outside the pipeline."""
    for stage, entries in manifests.items():
        if entries:
            yield f"{stage}: " + ", ".join(f"{key} ({e['path']})" for key, e in entries.items())


def run_inputs(cfg: Params, root: Path) -> list[Path]:
    """Stage `inputs`: resolve (and fetch) every outside input, then write ``data/inputs/<stage>.json``."""
    manifests = gather(cfg, root)
    if problems := small_data(cfg, root):
        log.warning(
            "%d split(s) too small to mean anything; results on them will not be the paper's:\n%s",
            len(problems),
            "\n".join(f"  - {p}" for p in problems),
        )
    for line in summary(manifests):
        log.info("%s", line)
    written = write_manifests(manifests, root)
    log.info("wrote %d input manifests in %s", len(written), root / MANIFEST_DIR)
    return written
