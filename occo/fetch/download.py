"""Resumable, verified downloads.

``fetch`` downloads into ``<file>.part`` and only renames it to ``<file>`` once it is complete:
its size matches what the server announced (Content-Length, Content-Range) and the registry's
``size``; its sha256 matches the pinned one; without a pin, a zip/tar/safetensors/json file must
also parse to its end. The sha256 and size of every finished download go into ``<file>.sha256``
(``sha256sum -c`` reads it) and are checked whenever the file is reused, so an unpinned file is
trusted only as the bytes that were first downloaded. A resume sends ``If-Range`` with the remote
file's ETag or Last-Modified date (kept in ``<file>.part.json``), so a changed remote file restarts
the download instead of being spliced onto the old one's first part.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import shutil
import struct
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from occo.data.io import ZIP_MAGIC, DataError, sha256_file, write_text_atomic
from occo.fetch.archive import check_archive

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_USER_AGENT = "occo-downloader"
_ARCHIVE_SUFFIXES = (".zip", ".tar", ".tgz", ".tar.gz", ".tar.bz2", ".tar.xz")
LOCAL_SOURCE_HINT = (
    "download it yourself and set download.datasets.<name>.source: /path/to/folder-or-archive in params.yaml"
)


def _matches(actual: str, sha256: str | None, sha256_prefix: str | None) -> bool:
    if sha256 is not None:
        return actual == sha256.lower()
    return sha256_prefix is None or actual.startswith(sha256_prefix.lower())


def _beside(dest: Path, suffix: str) -> Path:
    return dest.with_name(dest.name + suffix)


def record_path(dest: Path) -> Path:
    """``<file>.sha256``: the sha256 and size of what was downloaded to ``dest``."""
    return _beside(dest, ".sha256")


def _write_record(dest: Path, sha256: str, url: str | None) -> None:
    source = f"# url: {url}\n" if url else ""
    write_text_atomic(record_path(dest), f"# size: {dest.stat().st_size}\n{source}{sha256}  {dest.name}\n")


def _read_record(dest: Path) -> tuple[str, int] | None:
    """(sha256, size) from ``<file>.sha256``; None when it is missing or unreadable."""
    try:
        lines = record_path(dest).read_text(encoding="utf-8").splitlines()
        size = next(int(line.split(":", 1)[1]) for line in lines if line.startswith("# size:"))
        sha = next(line.split()[0] for line in lines if line and not line.startswith("#"))
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    return sha, size


def _check_safetensors(path: Path) -> None:
    """The header's tensor offsets must end exactly at the end of the file."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        prefix = fh.read(8)
        n = struct.unpack("<Q", prefix)[0] if len(prefix) == 8 else -1
        if not 0 < n <= size - 8:
            raise DataError(f"{path} is not a complete safetensors file: header length {n} in a {size}-byte file")
        try:
            header = json.loads(fh.read(n))
            end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise DataError(f"{path} is not a complete safetensors file: bad header ({exc})") from exc
    if 8 + n + end != size:
        raise DataError(
            f"{path} is not a complete safetensors file: its header ends the data at {8 + n + end}, "
            f"the file has {size} bytes"
        )


def check_complete(path: str | Path, name: str) -> None:
    """Check a file whose format (from ``name``) can say whether it is whole: zip and tar archives
    (torch's zip-format .pt/.pth included), safetensors and JSON. Others pass unchecked."""
    path = Path(path)
    lower = name.lower()
    if lower.endswith(_ARCHIVE_SUFFIXES):
        check_archive(path)
    elif lower.endswith((".pt", ".pth")):
        with path.open("rb") as fh:
            if fh.read(len(ZIP_MAGIC)) == ZIP_MAGIC:
                check_archive(path)
    elif lower.endswith(".safetensors"):
        _check_safetensors(path)
    elif lower.endswith(".json"):
        try:
            json.loads(path.read_bytes())
        except ValueError as exc:
            raise DataError(f"{path} is not complete JSON: {' '.join(str(exc).split())}") from exc


def registry_checks(item: Mapping[str, Any]) -> dict[str, Any]:
    """The checks a registry entry pins for one file (``sha256``, ``sha256_prefix``, ``size``), as
    keyword arguments of :func:`verified` and :func:`fetch`."""
    return {key: item.get(key) for key in ("sha256", "sha256_prefix", "size")}


def verified(
    dest: str | Path,
    *,
    sha256: str | None = None,
    sha256_prefix: str | None = None,
    size: int | None = None,
    sha256_of: Callable[[Path], str] = sha256_file,
) -> bool:
    """Whether ``dest`` is present and may be used as it is.

    A pinned ``sha256`` decides alone. Otherwise the file must match its ``.sha256`` record (and
    ``sha256_prefix``/``size`` when given). A file with neither pin nor record (put there by hand)
    is checked for completeness by its format and its sha256 is recorded from then on.
    ``sha256_of`` hashes the file (a cache of known hashes may stand in for reading it again).
    """
    dest = Path(dest)
    if not dest.is_file():
        return False
    actual_size = dest.stat().st_size
    if size is not None and actual_size != size:
        log.warning("%s has %d bytes, the registry says %d", dest, actual_size, size)
        return False
    record = None if sha256 is not None else _read_record(dest)
    if record is not None and record[1] != actual_size:
        log.warning("%s has %d bytes, %d were downloaded (%s)", dest, actual_size, record[1], record_path(dest))
        return False
    actual = sha256_of(dest)
    expected = sha256 or (record[0] if record is not None else None)
    if not _matches(actual, expected, sha256_prefix):
        log.warning("%s has sha256 %s, expected %s", dest, actual, expected or f"{sha256_prefix}...")
        return False
    if expected is None:
        try:
            check_complete(dest, dest.name)
        except DataError as exc:
            log.warning("%s", exc)
            return False
        log.warning("%s has no pinned or recorded sha256; recording %s", dest, actual)
        _write_record(dest, actual, None)
    return True


@dataclass(frozen=True)
class _Remote:
    """What the server said about the file (size, validators), kept in ``<file>.part.json`` between runs."""

    url: str
    total: int | None
    etag: str | None  # strong ETags only: If-Range may not use a weak one
    modified: str | None

    @classmethod
    def load(cls, path: Path) -> _Remote | None:
        try:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None

    def save(self, path: Path) -> None:
        write_text_atomic(path, json.dumps(asdict(self)) + "\n")

    @property
    def validator(self) -> str | None:
        return self.etag or self.modified


def _content_range(header: str | None, offset: int, url: str, part: Path) -> int | None:
    """Total size from ``bytes start-end/total``; the range must start at ``offset`` and run to the end."""
    try:
        unit, spec = (header or "").split(" ", 1)
        span, total_text = spec.split("/", 1)
        start, end = (int(x) for x in span.split("-", 1))
        total = None if total_text == "*" else int(total_text)
    except ValueError:
        total, unit, start, end = None, "", -1, -1
    if unit != "bytes" or start != offset or (total is not None and end != total - 1):
        raise DataError(
            f"cannot resume {url}: asked for bytes {offset}- and the server sent Content-Range "
            f"{header!r}; delete {part} to download from the start"
        )
    return total


def _check_free_space(part: Path, need: int) -> None:
    free = shutil.disk_usage(part.parent).free
    if need > free:
        raise DataError(f"{part} needs {need:,} more bytes, {part.parent} has {free:,} free")


def _resume_point(url: str, part: Path) -> tuple[int, _Remote | None]:
    """The byte to resume ``part`` at, and the record of the remote file its bytes came from: 0 unless that
    record names ``url`` with a validator (ETag or Last-Modified) to send in ``If-Range``."""
    remote = _Remote.load(_beside(part, ".json")) if part.exists() else None
    offset = part.stat().st_size if part.exists() else 0
    if offset and (remote is None or remote.url != url or remote.validator is None):
        log.info("%s: no record of which remote file its %d bytes came from; downloading from the start", part, offset)
        offset = 0
    return offset, remote


def _resumed_total(resp: http.client.HTTPResponse, offset: int, remote: _Remote, url: str, part: Path) -> int | None:
    """The remote file's size from a 206 answer to a resume: its Content-Range must start at ``offset``, agree with
    the recorded size and with Content-Length."""
    length = resp.headers.get("Content-Length")
    total = _content_range(resp.headers.get("Content-Range"), offset, url, part)
    if total is not None and remote.total is not None and total != remote.total:
        raise DataError(
            f"cannot resume {url}: the file was {remote.total} bytes and is now {total} although its "
            f"validator {remote.validator!r} is unchanged; delete {part} to download from the start"
        )
    total = total if total is not None else remote.total
    if length is not None and total is not None and int(length) != total - offset:
        raise DataError(
            f"cannot resume {url}: Content-Length {length} does not match Content-Range "
            f"{resp.headers.get('Content-Range')!r}; delete {part} to download from the start"
        )
    return total


def _write_mode(
    resp: http.client.HTTPResponse, offset: int, remote: _Remote | None, url: str, part: Path
) -> tuple[int, str, int | None]:
    """(offset, file mode, total size): append when the server answers a resume with 206, else write from byte 0."""
    status = getattr(resp, "status", None) or 200  # file:// responses carry no status
    if offset and status == 206:
        total = _resumed_total(resp, offset, remote, url, part)
        log.info("resuming %s at byte %d", url, offset)
        return offset, "ab", total
    if offset:
        log.info("%s changed or cannot be resumed; downloading it from the start", url)
    length = resp.headers.get("Content-Length")
    return 0, "wb", int(length) if length else None


def _write_body(
    resp: http.client.HTTPResponse, part: Path, mode: str, offset: int, total: int | None, limit: int | None, url: str
) -> None:
    """Stream the response body into ``part`` (``mode`` ``ab`` appends); a fresh ``part`` first records which remote
    file its bytes come from (``<part>.json``). DataError when the server sends more than ``limit`` bytes."""
    with (
        part.open(mode) as fh,
        tqdm(total=limit, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, desc=part.stem) as bar,
    ):
        if mode == "wb":
            etag = resp.headers.get("ETag")
            strong = etag if etag and not etag.startswith("W/") else None
            _Remote(url, total, strong, resp.headers.get("Last-Modified")).save(_beside(part, ".json"))
        while chunk := resp.read(_CHUNK):
            fh.write(chunk)
            bar.update(len(chunk))
            if limit is not None and fh.tell() > limit:
                raise DataError(f"{url} sent more than the {limit:,} bytes announced; delete {part} and report it")


def _download(url: str, part: Path, timeout: float, size: int | None) -> None:
    """Download ``url`` into ``part``, resuming only where the server proves it is the same remote file."""
    offset, remote = _resume_point(url, part)
    headers = {"User-Agent": _USER_AGENT}
    if offset:
        headers |= {"Range": f"bytes={offset}-", "If-Range": remote.validator}
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            log.warning("server refused to resume %s at byte %d; restarting", url, offset)
            part.unlink()
            _beside(part, ".json").unlink(missing_ok=True)
            _download(url, part, timeout, size)
            return
        raise
    with resp:
        offset, mode, total = _write_mode(resp, offset, remote, url, part)
        if size is not None and total is not None and total != size:
            raise DataError(f"{url} is {total:,} bytes on the server, the registry says {size:,}; not downloading it")
        limit = total if total is not None else size
        if limit is not None:
            _check_free_space(part, limit - offset)
        _write_body(resp, part, mode, offset, total, limit, url)
    got = part.stat().st_size
    if limit is not None and got != limit:
        raise DataError(
            f"incomplete download of {url}: {got:,} of {limit:,} bytes in {part}; run again to resume, "
            f"or delete {part} to download from the start"
        )


def _keep(url: str, part: Path, dest: Path, sha256: str | None, sha256_prefix: str | None) -> str:
    """Check a finished ``part`` (its pinned sha256, else that its format is complete), move it to ``dest`` and
    record its hash; returns the sha256. A hash mismatch deletes the download."""
    actual = sha256_file(part)
    if not _matches(actual, sha256, sha256_prefix):
        part.unlink()
        _beside(part, ".json").unlink(missing_ok=True)
        expected = sha256 or (f"{sha256_prefix}..." if sha256_prefix else None)
        raise DataError(f"sha256 mismatch for {url}: expected {expected}, got {actual}; the download was deleted")
    if sha256 is None:
        try:
            check_complete(part, dest.name)
        except DataError as exc:
            raise DataError(
                f"download of {url} is damaged or cut short: {exc}; run again to resume, "
                f"or delete {part} to download from the start"
            ) from exc
        log.warning("no full sha256 pinned for %s; computed %s, recorded in %s", url, actual, record_path(dest))
    os.replace(part, dest)
    _beside(part, ".json").unlink(missing_ok=True)
    _write_record(dest, actual, url)
    return actual


@contextlib.contextmanager
def removing_created_folders(folder: Path) -> Iterator[None]:
    """On an error in the block, remove the folders up to ``folder`` that did not exist before it and are empty
    (a failed download leaves no empty cache folder behind; one holding a resumable ``.part`` stays)."""
    created = [p for p in (folder, *folder.parents) if not p.exists()]  # deepest first
    try:
        yield
    except BaseException:
        for path in created:
            try:
                path.rmdir()
            except OSError:
                break
        raise


def fetch(
    url: str,
    dest: Path,
    *,
    sha256: str | None = None,
    sha256_prefix: str | None = None,
    size: int | None = None,
    timeout: float = 60,
    hint: str = LOCAL_SOURCE_HINT,
    sha256_of: Callable[[Path], str] = sha256_file,
) -> Path:
    """Download ``url`` to ``dest`` (resumable via ``dest.part``), verified as the module docstring says.

    A present ``dest`` that passes :func:`verified` is kept; one that fails is downloaded again. A
    pinned-hash mismatch deletes the download and raises DataError with both hashes; an incomplete
    or damaged download raises DataError naming the ``.part`` file (run again to resume, or delete
    it). Network failures raise DataError naming the URL, then ``hint`` (how to provide the file by hand).
    ``sha256_of`` hashes a present ``dest`` (see :func:`verified`).
    """
    dest = Path(dest)
    if verified(dest, sha256=sha256, sha256_prefix=sha256_prefix, size=size, sha256_of=sha256_of):
        log.info("%s already present and verified; not downloading", dest)
        return dest
    if dest.exists():
        log.warning("%s fails its check; downloading it again", dest)
        dest.unlink()
    record_path(dest).unlink(missing_ok=True)
    part = _beside(dest, ".part")
    with removing_created_folders(dest.parent):
        dest.parent.mkdir(parents=True, exist_ok=True)
        log.info("downloading %s to %s", url, dest)
        try:
            _download(url, part, timeout, size)
        except (OSError, http.client.HTTPException) as exc:
            reason = " ".join(str(getattr(exc, "reason", None) or exc).split()) or type(exc).__name__
            kept = f" ({part} is kept: run again to resume)" if part.exists() else ""
            raise DataError(f"cannot download {url}: {reason}{kept}; {hint}") from exc
        actual = _keep(url, part, dest, sha256, sha256_prefix)
    log.info("saved %s (sha256 %s)", dest, actual)
    return dest
