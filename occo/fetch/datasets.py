"""Import a dataset into ``<out_root>/<name>/<split>/{ir,vi,labels,masks}``, validated and atomically.

Sources: a local folder or a zip/tar archive in one of three layouts (auto-detected, in this
order), or the string ``registry`` to download the official archives listed in ``registry.yaml``.

- flat: ``ir/``, ``vi/`` (+ ``labels/``, ``masks/``, ``fused/<Method>/``), imported as one split;
- official: the dataset's own archive layout, mapped by its registry entry;
- ours: ``<split>/ir``, ``<split>/vi`` (+ ``labels/``, ``masks/``).

Images are copied byte for byte, once each is read, within the pixel cap and, where a symlink
leads to it, inside the source folder. Published fused results (``fused/<Method>/``) go to
``<external_root>/<Method>/<name>/<split>/``. ``MANIFEST.md``, ``README.md`` and ``splits/*.txt``
are kept as provenance in ``<out_root>/<name>/``.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from occo.config import DatasetSource, Download
from occo.config.types import RESERVED_METHODS
from occo.data.io import IMAGE_EXTS, DataError, atomic_dir, load_array, write_text_atomic
from occo.data.pairs import Pair, find_pairs, image_size, index_images, load_pair, match_pairs
from occo.data.synthetic import make_synthetic
from occo.fetch.archive import extract, is_archive
from occo.fetch.download import LOCAL_SOURCE_HINT, fetch, registry_checks
from occo.fetch.registry import load_registry
from occo.pipeline.gpus import queued_from

log = logging.getLogger(__name__)

REGISTRY_SOURCE = "registry"
DEFAULTS = Download()
"""The ``download`` params' defaults: the caps :func:`import_dataset` applies unless told otherwise."""
_PROVENANCE_FILES = ("MANIFEST.md", "README.md")
_EXTRA_TREES = ("labels", "masks")


@dataclass(frozen=True)
class _SplitSource:
    split: str
    ir_dir: Path
    vi_dir: Path
    ir: dict[str, Path]
    vi: dict[str, Path]
    extras: tuple[tuple[Path, str], ...]  # (source folder, destination relative to <split>/)
    fused: tuple[tuple[str, Path], ...]  # (method, folder of fused images)


@dataclass(frozen=True)
class _Plan:
    layout: str
    splits: tuple[_SplitSource, ...]
    provenance: tuple[tuple[Path, str], ...]  # (source file, destination relative to <name>/)


def source_path(source: str | Path, root: Path) -> Path:
    """A local dataset source as an absolute path: as given when absolute, else relative to ``root``; in a copy
    that DVC's queue runs an experiment in, a relative source the copy lacks (one beside the repository, such as
    ``../shared``) is read relative to the workspace the experiment was queued from."""
    path = Path(source)
    if path.is_absolute():
        return path
    here = (root / path).resolve()
    workspace = queued_from(root.resolve())
    if not here.exists() and workspace is not None:
        return (workspace / path).resolve()
    return here


def registry_problem(name: str, datasets: Mapping[str, dict]) -> str | None:
    """Why dataset ``name`` cannot be downloaded from the registry's ``datasets``, or None: it is not listed
    there, or it has no direct download (the message then says where to get it by hand)."""
    hint = LOCAL_SOURCE_HINT.replace("<name>", name)
    entry = datasets.get(name)
    if entry is None:
        return f"{name} is not in the registry ({', '.join(datasets)}); {hint}"
    if not entry["archives"]:
        return (
            f"{name} has no direct download (get it from {entry.get('manual_download') or entry['homepage']}); {hint}"
        )
    return None


def _visible_dirs(folder: Path) -> list[Path]:
    return [p for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith((".", "__MACOSX"))]


def _provenance(root: Path) -> tuple[tuple[Path, str], ...]:
    files = [(root / name, name) for name in _PROVENANCE_FILES if (root / name).is_file()]
    if (root / "splits").is_dir():
        files += [(p, f"splits/{p.name}") for p in sorted((root / "splits").glob("*.txt"))]
    return tuple(files)


def _split_source(split: str, folder: Path) -> _SplitSource:
    """A split stored as ``folder/{ir,vi,labels,masks,fused}``; DataError for published results under a reserved
    method name (occo, a pixel baseline), whose rows and folders they would take."""
    fused = tuple((d.name, d) for d in _visible_dirs(folder / "fused")) if (folder / "fused").is_dir() else ()
    if taken := [d for name, d in fused if name in RESERVED_METHODS]:
        raise DataError(
            f"{taken[0]}: published results may not be named {taken[0].name!r} ({', '.join(RESERVED_METHODS)} are "
            "reserved method names): rename the folder"
        )
    return _SplitSource(
        split=split,
        ir_dir=folder / "ir",
        vi_dir=folder / "vi",
        ir=index_images(folder / "ir"),
        vi=index_images(folder / "vi"),
        extras=tuple((folder / tree, tree) for tree in _EXTRA_TREES if (folder / tree).is_dir()),
        fused=fused,
    )


def _flat_plan(name: str, root: Path, split: str | None) -> _Plan | None:
    if not ((root / "ir").is_dir() and (root / "vi").is_dir()):
        return None
    if split is None:
        raise DataError(f"{root} is a flat ir/ vi/ folder: set download.datasets.{name}.split to the split it holds")
    return _Plan("flat", (_split_source(split, root),), _provenance(root))


def _official_plan(name: str, root: Path, entry: dict) -> _Plan | None:
    splits_spec: dict[str, dict] = entry["splits"]

    def has_split(base: Path) -> bool:
        return any((base / s["ir"]).is_dir() and (base / s["vi"]).is_dir() for s in splits_spec.values())

    base = root
    if not has_split(base):
        children = _visible_dirs(root)
        if len(children) != 1 or not has_split(children[0]):
            return None
        base = children[0]
    splits = []
    for split, spec in splits_spec.items():
        ir_dir, vi_dir = base / spec["ir"], base / spec["vi"]
        if not (ir_dir.is_dir() and vi_dir.is_dir()):
            log.info("%s: split %s not in %s (no %s and %s)", name, split, base, spec["ir"], spec["vi"])
            continue
        patterns = spec.get("pattern", {})
        width = spec.get("id_width")
        extras = []
        for kind, folder in spec.get("labels", {}).items():
            if (base / folder).is_dir():
                extras.append((base / folder, f"labels/{kind}"))
            else:
                log.warning("%s: split %s has no %s labels at %s", name, split, kind, base / folder)
        splits.append(
            _SplitSource(
                split=split,
                ir_dir=ir_dir,
                vi_dir=vi_dir,
                ir=index_images(ir_dir, pattern=patterns.get("ir"), id_width=width),
                vi=index_images(vi_dir, pattern=patterns.get("vi"), id_width=width),
                extras=tuple(extras),
                fused=(),
            )
        )
    return _Plan("official", tuple(splits), _provenance(base))


def _ours_plan(root: Path) -> _Plan | None:
    split_dirs = [d for d in _visible_dirs(root) if (d / "ir").is_dir() and (d / "vi").is_dir()]
    if not split_dirs:
        return None
    return _Plan("ours", tuple(_split_source(d.name, d) for d in split_dirs), _provenance(root))


def _plan(name: str, root: Path, split: str | None, entry: dict | None) -> _Plan:
    plan = _flat_plan(name, root, split)
    if plan is None and entry is not None:
        plan = _official_plan(name, root, entry)
    if plan is None:
        plan = _ours_plan(root)
    if plan is None:
        official = ""
        if entry is not None:
            folders = ", ".join(f"{s}: {spec['ir']} + {spec['vi']}" for s, spec in entry["splits"].items())
            official = f", or the official {name} layout ({folders})"
        raise DataError(f"cannot tell the layout of {root}: expected ir/ + vi/, <split>/ir + <split>/vi{official}")
    return plan if plan.layout == "flat" else _select(plan, split, str(root))


def _select(plan: _Plan, split: str | None, where: str) -> _Plan:
    """Keep only ``split`` (all splits when None)."""
    if split is None:
        return plan
    chosen = tuple(s for s in plan.splits if s.split == split)
    if not chosen:
        raise DataError(f"{where} has no split {split} (found: {', '.join(s.split for s in plan.splits)})")
    return _Plan(plan.layout, chosen, plan.provenance)


def _inside(path: Path, root: Path) -> Path:
    """``path`` when it resolves inside ``root`` (a resolved folder); a symlink that leaves it raises DataError."""
    target = path.resolve()
    if target != root and root not in target.parents:
        raise DataError(f"{path} links to {target}, outside the source folder {root}: copy the file in instead")
    return path


def _check_size(path: Path, pair_id: str, size: tuple[int, int], max_pixels: int | None) -> None:
    arr = load_array(path, max_pixels=max_pixels)
    if arr.shape[:2] != size:
        raise DataError(f"size mismatch: {path} is {image_size(arr)}, but pair {pair_id} is {size[0]}x{size[1]}")


def _copy_tree(
    src: Path, dst: Path, dropped: set[str], sizes: dict[str, tuple[int, int]], root: Path, max_pixels: int | None
) -> int:
    """Copy a labels/masks tree, leaving out files of dropped ids; images of kept ids are size-checked."""
    copied = 0
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file() or path.stem in dropped:
            continue
        _inside(path, root)
        if path.suffix.lower() in IMAGE_EXTS and path.stem in sizes:
            _check_size(path, path.stem, sizes[path.stem], max_pixels)
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dst / rel)
        copied += 1
    return copied


@dataclass(frozen=True)
class _Job:
    """One import: the dataset, where it goes, which pairs and the caps that apply (see :func:`import_dataset`)."""

    name: str
    out_root: Path
    split: str | None
    limit: int | None
    external_root: Path | None
    max_pixels: int | None
    max_unpack_ratio: float


class _Staging:
    """The folders an import writes, each built beside its target and swapped in when the import completes:
    ``<out_root>/<name>`` and, per method with published results, ``<external_root>/<Method>/<name>``."""

    def __init__(self, stack: ExitStack, job: _Job) -> None:
        self.stack, self.job = stack, job
        self.dataset = stack.enter_context(atomic_dir(job.out_root / job.name))
        self._fused: dict[str, Path] = {}

    def fused(self, method: str) -> Path:
        """The staging folder of ``method``'s fused results (opened on first use)."""
        if method not in self._fused:
            target = self.job.external_root / method / self.job.name
            self._fused[method] = self.stack.enter_context(atomic_dir(target))
        return self._fused[method]


def _copy_pairs(job: _Job, split: str, kept: list[Pair], split_dir: Path, root: Path) -> dict[str, tuple[int, int]]:
    """Copy the pairs ``kept`` byte for byte into ``split_dir/{ir,vi}/<id><ext>``, each read first (within the pixel
    cap, both images of one size, inside the source folder ``root``); returns each id's (H, W)."""
    sizes: dict[str, tuple[int, int]] = {}
    (split_dir / "ir").mkdir(parents=True)
    (split_dir / "vi").mkdir()
    for pair in tqdm(kept, desc=f"{job.name}/{split}", unit="pair"):
        _inside(pair.ir, root)
        _inside(pair.vi, root)
        ir, _ = load_pair(pair, max_pixels=job.max_pixels)
        sizes[pair.id] = ir.shape[:2]
        shutil.copy2(pair.ir, split_dir / "ir" / f"{pair.id}{pair.ir.suffix}")
        shutil.copy2(pair.vi, split_dir / "vi" / f"{pair.id}{pair.vi.suffix}")
    return sizes


def _copy_fused(
    job: _Job, split: str, method: str, folder: Path, sizes: dict[str, tuple[int, int]], staging: _Staging, root: Path
) -> None:
    """``method``'s published fused images of the ids in ``sizes`` (each of its pair's size) into
    ``<external_root>/<method>/<name>/<split>/``; nothing without an external root."""
    files = index_images(folder)
    chosen = sorted(k for k in sizes if k in files)
    if job.external_root is None or not chosen:
        log.info("%s/%s: not importing %d fused results of %s", job.name, split, len(chosen), method)
        return
    dst = staging.fused(method) / split
    dst.mkdir(parents=True, exist_ok=True)
    for key in chosen:
        _check_size(_inside(files[key], root), key, sizes[key], job.max_pixels)
        shutil.copy2(files[key], dst / f"{key}{files[key].suffix}")
    target = job.external_root / method / job.name / split
    log.info("%s/%s: %d fused results of %s -> %s", job.name, split, len(chosen), method, target)


def _copy_split(job: _Job, src: _SplitSource, staging: _Staging, root: Path) -> int:
    """One split: its first ``limit`` pairs, the labels/masks files of those ids and their published fused results;
    returns the number of pairs copied."""
    pairs = match_pairs(ir=src.ir, vi=src.vi, ir_dir=src.ir_dir, vi_dir=src.vi_dir)
    kept = pairs if job.limit is None else pairs[: job.limit]
    dropped = {p.id for p in pairs[len(kept) :]}
    split_dir = staging.dataset / src.split
    sizes = _copy_pairs(job, src.split, kept, split_dir, root)
    for folder, rel in src.extras:
        n = _copy_tree(folder, split_dir / rel, dropped, sizes, root, job.max_pixels)
        log.info("%s/%s: copied %d files of %s", job.name, src.split, n, folder)
    for method, folder in src.fused:
        _copy_fused(job, src.split, method, folder, sizes, staging, root)
    return len(kept)


def _run_plan(job: _Job, plan: _Plan, root: Path) -> dict[str, int]:
    """Copy ``plan`` (read from the resolved folder ``root``) into ``out_root/name``, with its provenance files;
    returns pairs per split."""
    counts: dict[str, int] = {}
    with ExitStack() as stack:
        staging = _Staging(stack, job)
        for src in plan.splits:
            counts[src.split] = _copy_split(job, src, staging, root)
        for path, rel in plan.provenance:
            (staging.dataset / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(_inside(path, root), staging.dataset / rel)
    summary = ", ".join(f"{s} {n} pairs" for s, n in counts.items())
    log.info("imported %s (%s layout): %s -> %s", job.name, plan.layout, summary, job.out_root / job.name)
    return counts


def _scratch(job: _Job) -> tempfile.TemporaryDirectory:
    """A temporary folder under ``out_root`` to unpack archives in (removed afterwards)."""
    job.out_root.mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(dir=job.out_root, prefix=f".{job.name}.extract-")


def _from_folder(job: _Job, root: Path, entry: dict | None) -> dict[str, int]:
    """Import from a folder in one of the three layouts (``entry``: the registry's, for the official one)."""
    root = root.resolve()
    return _run_plan(job, _plan(job.name, root, job.split, entry), root)


def _from_archive(job: _Job, archive: Path, entry: dict | None) -> dict[str, int]:
    """Import from a zip/tar archive: unpacked to scratch (within the unpack cap), its single top folder entered."""
    with _scratch(job) as tmp:
        root = extract(archive, tmp, max_ratio=job.max_unpack_ratio)
        children = _visible_dirs(root)
        if len(children) == 1 and not any(p.is_file() for p in root.iterdir()):
            root = children[0]
        return _from_folder(job, root, entry)


def _from_registry(job: _Job, datasets: Mapping[str, dict], downloads: Path) -> dict[str, int]:
    """Import the official archives of the registry's entry: downloaded (verified) to ``downloads``, unpacked to
    scratch together and read in the official layout."""
    if (problem := registry_problem(job.name, datasets)) is not None:
        raise DataError(problem)
    entry = datasets[job.name]
    archives = [fetch(a["url"], downloads / a["filename"], **registry_checks(a)) for a in entry["archives"]]
    where = ", ".join(str(a) for a in archives)
    with _scratch(job) as tmp:
        root = Path(tmp).resolve()
        for archive in archives:
            extract(archive, root, max_ratio=job.max_unpack_ratio)
        plan = _official_plan(job.name, root, entry)
        if plan is None:
            raise DataError(f"{where} do not have the {job.name} layout given in the registry")
        return _run_plan(job, _select(plan, job.split, where), root)


def import_dataset(
    name: str,
    source: str | Path,
    out_root: Path,
    *,
    split: str | None = None,
    limit: int | None = None,
    registry: dict | None = None,
    external_root: Path | None = None,
    downloads_root: Path | None = None,
    max_pixels: int | None = DEFAULTS.max_pixels,
    max_unpack_ratio: float = DEFAULTS.max_unpack_ratio,
) -> dict[str, int]:
    """Import dataset ``name`` from ``source`` into ``out_root/name``; returns pairs per split.

    ``source`` is a folder, a zip/tar archive, or ``"registry"`` (official archives are downloaded
    to ``downloads_root``, default ``out_root/../downloads``). ``split`` names the split of a flat
    folder and otherwise selects one split; ``limit`` keeps the first N ids of each split. Every
    kept pair is read and size-checked (at most ``max_pixels`` pixels an image); symlinks may not
    leave the source folder; archives may unpack to at most ``max_unpack_ratio`` times their size.
    Any problem raises DataError naming the file. The previous import is replaced only once the new
    one is complete. ``name`` and ``split`` are folder names and ``limit`` is positive, as the params
    schema (``download.datasets``) makes them; the caps default to the params' defaults.
    """
    out_root = Path(out_root)
    job = _Job(name, out_root, split, limit, external_root, max_pixels, max_unpack_ratio)
    datasets = (registry if registry is not None else load_registry())["datasets"]
    if str(source) == REGISTRY_SOURCE:
        downloads = Path(downloads_root) if downloads_root is not None else out_root.parent / "downloads"
        return _from_registry(job, datasets, downloads)
    source = Path(source)
    if source.is_dir():
        return _from_folder(job, source, datasets.get(name))
    if not source.exists():
        raise DataError(f"source for {name} not found: {source}")
    if not is_archive(source):
        raise DataError(f"source for {name} is neither a folder nor a zip/tar archive: {source}")
    return _from_archive(job, source, datasets.get(name))


def split_sizes(name: str, entry: DatasetSource, root: Path) -> dict[str, int] | None:
    """Pairs per split an import of ``entry`` would keep (its ``limit`` applied), found without copying anything:
    from a local folder's layout, or the registry's recorded split sizes for ``registry``. None where it cannot
    be told before importing: an archive, a missing or unreadable source."""
    registry = load_registry()["datasets"]
    if entry.source == REGISTRY_SOURCE:
        splits = registry.get(name, {}).get("splits", {})
        sizes = {s: spec["pairs"] for s, spec in splits.items() if "pairs" in spec and entry.split in (None, s)}
    else:
        folder = source_path(entry.source, root)
        if not folder.is_dir():
            return None
        try:
            plan = _plan(name, folder, entry.split, registry.get(name))
            sizes = {s.split: len(match_pairs(ir=s.ir, vi=s.vi, ir_dir=s.ir_dir, vi_dir=s.vi_dir)) for s in plan.splits}
        except DataError:
            return None
    return {s: n if entry.limit is None else min(n, entry.limit) for s, n in sizes.items()}


def run_download(cfg: Download, root: Path) -> dict[str, dict[str, int]]:
    """Stage `download`: the synthetic set and every dataset of ``cfg.datasets`` into ``root/data/raw``,
    published fused results into ``root/data/external``; writes and returns ``data/raw/INDEX.json``
    (``{dataset: {split: pairs}}``). An optional dataset whose local source is absent is skipped."""
    raw, external = root / "data" / "raw", root / "data" / "external"
    external.mkdir(parents=True, exist_ok=True)  # a stage output even when no source has fused results
    index: dict[str, dict[str, int]] = {}
    if (syn := cfg.synthetic) is not None:
        make_synthetic(
            raw / "synthetic", n_train=syn.n_train, n_test=syn.n_test, height=syn.height, width=syn.width, seed=syn.seed
        )
        index["synthetic"] = {
            d.name: len(find_pairs(ir=d / "ir", vi=d / "vi"))
            for d in sorted((raw / "synthetic").iterdir())
            if d.is_dir()
        }
    for name, entry in cfg.datasets.items():
        source: str | Path = entry.source
        if source != REGISTRY_SOURCE:
            source = source_path(source, root)
            if not source.exists() and entry.optional:
                log.warning("skipping optional dataset %s: source %s not found", name, source)
                continue
        index[name] = import_dataset(
            name,
            source,
            raw,
            split=entry.split,
            limit=entry.limit,
            external_root=external,
            downloads_root=root / "data" / "downloads",
            max_pixels=cfg.max_pixels,
            max_unpack_ratio=cfg.max_unpack_ratio,
        )
    write_text_atomic(raw / "INDEX.json", json.dumps(index, indent=2, sort_keys=True) + "\n")
    log.info("wrote %s: %s", raw / "INDEX.json", index)
    return index
