"""The shipped registry of datasets and pretrained weights (``registry.yaml``), validated."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, NoReturn

import yaml

from occo.data.io import DataError
from occo.data.names import check_name

REGISTRY_PATH = Path(__file__).with_name("registry.yaml")

_SHA256 = re.compile(r"[0-9a-f]{64}")
_HEX = re.compile(r"[0-9a-f]+")


class _Checker:
    """Raises DataError naming the registry file and the offending entry."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, problem: str) -> NoReturn:
        raise DataError(f"invalid registry {self.path}: {where}: {problem}")

    def text(self, entry: dict, key: str, where: str) -> str:
        value = entry.get(key)
        if not isinstance(value, str) or not value:
            self.fail(where, f"'{key}' must be a non-empty string")
        return value

    def name(self, value: Any, where: str) -> str:
        """A name that becomes a file or folder name (datasets, splits, weights, downloaded files)."""
        try:
            return check_name(value, "the name")
        except DataError as exc:
            self.fail(where, str(exc))

    def mapping(self, value: Any, where: str) -> dict:
        if not isinstance(value, dict):
            self.fail(where, "must be a mapping")
        return value

    def items(self, doc: dict, key: str) -> dict[str, dict]:
        entries = doc.get(key)
        if not isinstance(entries, list) or not entries:
            self.fail(key, "must be a non-empty list")
        out: dict[str, dict] = {}
        for i, entry in enumerate(entries):
            entry = self.mapping(entry, f"{key}[{i}]")
            name = self.name(self.text(entry, "name", f"{key}[{i}]"), f"{key}[{i}]")
            if name in out:
                self.fail(f"{key}[{i}]", f"duplicate name {name}")
            out[name] = entry
        return out

    def hashes(self, entry: dict, where: str) -> None:
        sha = entry.get("sha256")
        if sha is not None and not (isinstance(sha, str) and _SHA256.fullmatch(sha)):
            self.fail(where, "'sha256' must be null or 64 lowercase hex digits")
        prefix = entry.get("sha256_prefix")
        if prefix is not None and not (isinstance(prefix, str) and _HEX.fullmatch(prefix)):
            self.fail(where, "'sha256_prefix' must be lowercase hex")
        if isinstance(sha, str) and isinstance(prefix, str) and not sha.startswith(prefix):
            self.fail(where, f"sha256 {sha} does not start with sha256_prefix {prefix}")

    def download(self, entry: dict, where: str) -> None:
        self.text(entry, "url", where)
        self.name(self.text(entry, "filename", where), f"{where} filename")
        self.hashes(entry, where)
        size = entry.get("size")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            self.fail(where, "'size' must be null or a positive number of bytes")

    def split(self, spec: Any, where: str) -> None:
        spec = self.mapping(spec, where)
        for key in ("ir", "vi"):
            self.text(spec, key, where)
        for kind, folder in self.mapping(spec.get("labels", {}), f"{where} labels").items():
            if not isinstance(folder, str) or not folder:
                self.fail(f"{where} labels", f"'{kind}' must be a folder path")
        patterns = self.mapping(spec.get("pattern", {}), f"{where} pattern")
        for key, pattern in patterns.items():
            if key not in ("ir", "vi"):
                self.fail(f"{where} pattern", f"unknown modality '{key}'")
            try:
                groups = re.compile(pattern).groups
            except (re.error, TypeError) as exc:
                self.fail(f"{where} pattern", f"bad regex for {key}: {exc}")
            if groups != 1:
                self.fail(f"{where} pattern", f"regex for {key} must have exactly one group")
        for key in ("id_width", "pairs"):
            value = spec.get(key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                self.fail(where, f"'{key}' must be a positive integer")


def load_registry(path: str | Path | None = None) -> dict[str, dict[str, dict]]:
    """Load and validate the registry (default: the one shipped with the package).

    Returns ``{"datasets": {name: entry}, "weights": {name: entry}}``. Each dataset has
    ``homepage``, ``archives`` (``url``, ``filename``, ``sha256``), and ``splits`` mapping a split
    name to folders ``ir``, ``vi`` and optional ``labels``/``pattern``/``id_width``/``pairs`` (the full split's
    size). Each weight is
    one file (``url``, ``filename``, ``sha256``, optional ``size`` in bytes) or a folder of ``files``
    (each ``url``, ``filename``, ``sha256``). Names and file names must be single path components.
    """
    path = Path(path) if path is not None else REGISTRY_PATH
    check = _Checker(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise DataError(f"cannot read registry {path}: {' '.join(str(exc).split())}") from exc
    doc = check.mapping(doc, "top level")
    datasets = check.items(doc, "datasets")
    for name, entry in datasets.items():
        check.text(entry, "homepage", name)
        archives = entry.get("archives")
        if not isinstance(archives, list):
            check.fail(name, "'archives' must be a list (empty when there is no direct download)")
        for i, archive in enumerate(archives):
            check.download(check.mapping(archive, f"{name} archives[{i}]"), f"{name} archives[{i}]")
        splits = check.mapping(entry.get("splits"), f"{name} splits")
        if not splits:
            check.fail(f"{name} splits", "no splits")
        for split, spec in splits.items():
            check.name(split, f"{name} splits")
            check.split(spec, f"{name} split {split}")
    weights = check.items(doc, "weights")
    for name, entry in weights.items():
        if "files" in entry:  # a model folder (e.g. a Hugging Face repo): fetched into models/pretrained/<name>/
            files = entry["files"]
            if not isinstance(files, list) or not files or "url" in entry:
                check.fail(name, "'files' must be a non-empty list (and replaces 'url'/'filename')")
            for i, item in enumerate(files):
                check.download(check.mapping(item, f"{name} files[{i}]"), f"{name} files[{i}]")
        else:
            check.download(entry, name)
    return {"datasets": datasets, "weights": weights}


def full_split(dataset: str, split: str) -> int | None:
    """How many pairs the whole ``split`` of ``dataset`` holds (the registry's ``pairs``), None when not recorded."""
    entry = load_registry()["datasets"].get(dataset)
    return None if entry is None else entry["splits"].get(split, {}).get("pairs")
