"""Resumable, hash-checked downloads and safe archive extraction."""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from occo.data.io import DataError

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_USER_AGENT = "occo-downloader"
LOCAL_SOURCE_HINT = (
    "download it yourself and set download.datasets.<name>.source: /path/to/folder-or-archive in params.yaml"
)


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _matches(actual: str, sha256: str | None, sha256_prefix: str | None) -> bool:
    if sha256 is not None:
        return actual == sha256.lower()
    if sha256_prefix is not None:
        return actual.startswith(sha256_prefix.lower())
    return True


def _range_total(content_range: str | None, offset: int, url: str) -> int | None:
    """Total size from a ``bytes start-end/total`` header, checking the range starts at ``offset``."""
    try:
        unit, spec = (content_range or "").split(" ", 1)
        span, total = spec.split("/", 1)
        start = int(span.split("-", 1)[0])
    except ValueError:
        raise DataError(f"cannot resume {url}: malformed Content-Range {content_range!r}") from None
    if unit != "bytes" or start != offset:
        raise DataError(f"cannot resume {url}: asked for bytes from {offset}, server sent {content_range!r}")
    return None if total == "*" else int(total)


def _download(url: str, part: Path, timeout: float) -> None:
    """Download ``url`` into ``part``, resuming from its current size where the server allows."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": _USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            log.warning("server refused to resume %s at byte %d; restarting", url, offset)
            part.unlink()
            _download(url, part, timeout)
            return
        raise
    with resp:
        status = getattr(resp, "status", None) or 200  # file:// responses carry no status
        if offset and status == 206:
            total = _range_total(resp.headers.get("Content-Range"), offset, url)
            mode = "ab"
            log.info("resuming %s at byte %d", url, offset)
        else:
            if offset:
                log.info("server ignored the range request for %s; restarting from zero", url)
            offset, mode = 0, "wb"
            length = resp.headers.get("Content-Length")
            total = int(length) if length else None
        with part.open(mode) as fh, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, desc=part.stem
        ) as bar:
            while chunk := resp.read(_CHUNK):
                fh.write(chunk)
                bar.update(len(chunk))
    size = part.stat().st_size
    if total is not None and size != total:
        raise DataError(f"incomplete download of {url}: {size} of {total} bytes; run again to resume {part}")


def fetch(
    url: str,
    dest: Path,
    *,
    sha256: str | None = None,
    sha256_prefix: str | None = None,
    timeout: float = 60,
    hint: str = LOCAL_SOURCE_HINT,
) -> Path:
    """Download ``url`` to ``dest`` (resumable via ``dest.part``) and verify its sha256.

    An existing ``dest`` with a matching hash is kept. A hash mismatch deletes the download and
    raises DataError with the expected and actual hashes; with no hash given, the computed one is
    logged so it can be pinned. Network failures raise DataError naming the URL, then ``hint`` (how to
    provide the file by hand).
    """
    dest = Path(dest)
    expected = sha256 or (f"{sha256_prefix}..." if sha256_prefix else None)
    if dest.exists():
        actual = sha256_file(dest)
        if _matches(actual, sha256, sha256_prefix):
            log.info("%s already present (sha256 %s); not downloading", dest, actual)
            return dest
        log.warning("%s has sha256 %s, expected %s; downloading it again", dest, actual, expected)
        dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    log.info("downloading %s to %s", url, dest)
    try:
        _download(url, part, timeout)
    except (OSError, http.client.HTTPException) as exc:
        reason = " ".join(str(getattr(exc, "reason", None) or exc).split()) or type(exc).__name__
        raise DataError(f"cannot download {url}: {reason}; {hint}") from exc
    actual = sha256_file(part)
    if not _matches(actual, sha256, sha256_prefix):
        part.unlink()
        raise DataError(f"sha256 mismatch for {url}: expected {expected}, got {actual}; the download was deleted")
    if sha256 is None:
        log.warning("no full sha256 pinned for %s; computed %s (pin it in occo/data/registry.yaml)", url, actual)
    os.replace(part, dest)
    log.info("saved %s (sha256 %s)", dest, actual)
    return dest


def is_archive(path: str | Path) -> bool:
    """True for a zip file or a (possibly compressed) tar file."""
    path = Path(path)
    return path.is_file() and (zipfile.is_zipfile(path) or tarfile.is_tarfile(path))


def _safe_member(name: str, root: Path, archive: Path) -> None:
    pure = PurePosixPath(name.replace("\\", "/"))
    target = (root / pure).resolve()
    if pure.is_absolute() or ".." in pure.parts or (target != root and root not in target.parents):
        raise DataError(f"unsafe path {name!r} in archive {archive}: it would land outside {root}")


def extract(archive: str | Path, dest: str | Path) -> Path:
    """Extract a zip or tar(.gz/.bz2/.xz) archive into ``dest``.

    Members with absolute paths, ``..`` components, links or device entries raise DataError.
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                members = zf.infolist()
                for member in members:
                    _safe_member(member.filename, root, archive)
                for member in tqdm(members, desc=f"extract {archive.name}", unit="file"):
                    zf.extract(member, root)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                members = tf.getmembers()
                for member in members:
                    _safe_member(member.name, root, archive)
                    if not (member.isfile() or member.isdir()):
                        raise DataError(f"archive {archive} holds {member.name!r}, which is not a plain file or folder")
                for member in tqdm(members, desc=f"extract {archive.name}", unit="file"):
                    tf.extract(member, root, filter="data")
        else:
            raise DataError(f"not a zip or tar archive: {archive}")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise DataError(f"cannot extract {archive}: {' '.join(str(exc).split())}") from exc
    log.info("extracted %s to %s", archive, dest)
    return dest
