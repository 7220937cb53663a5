"""Zip and tar archives: integrity checks and bounded, safe extraction."""

from __future__ import annotations

import logging
import os
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from occo.data.io import DataError

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


def is_archive(path: str | Path) -> bool:
    """True for a zip file or a (possibly compressed) tar file."""
    path = Path(path)
    return path.is_file() and (zipfile.is_zipfile(path) or tarfile.is_tarfile(path))


TAR_END = 2 * tarfile.BLOCKSIZE
"""A tar archive ends with two zero blocks (POSIX); a tar cut at a member boundary lacks them."""


def check_archive(path: str | Path) -> None:
    """Read every member of a zip or tar(.gz/.bz2/.xz) archive to its end (CRCs, compressed-stream ends) and, for
    a tar, its end-of-archive marker (two zero blocks).

    A truncated or corrupt archive raises DataError naming the file and what is wrong.
    """
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                bad = zf.testzip()
            if bad is not None:
                raise DataError(f"{path} is a damaged zip archive: member {bad!r} fails its CRC")
            return
        with tarfile.open(path) as tf:
            for member in tf:
                if member.isfile():
                    with tf.extractfile(member) as fh:
                        while fh.read(_CHUNK):
                            pass
            tf.fileobj.seek(tf.offset)
            if tf.fileobj.read(TAR_END) != bytes(TAR_END):
                raise DataError(
                    f"{path} is not a complete tar archive: no end-of-archive marker after its last member "
                    f"{tf.members[-1].name if tf.members else '(none)'!r} (cut short at a member boundary?)"
                )
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise DataError(f"{path} is not a complete zip or tar archive: {' '.join(str(exc).split())}") from exc


def _safe_member(name: str, root: Path, archive: Path) -> None:
    pure = PurePosixPath(name.replace("\\", "/"))
    target = (root / pure).resolve()
    if pure.is_absolute() or ".." in pure.parts or (target != root and root not in target.parents):
        raise DataError(f"unsafe path {name!r} in archive {archive}: it would land outside {root}")


def _check_members(archive: Path, members: list[tuple[str, int]], root: Path, max_ratio: float) -> None:
    """Refuse unsafe names, and an archive that would unpack past ``max_ratio`` times its size or the free space."""
    for name, _ in members:
        _safe_member(name, root, archive)
    unpacked = sum(size for _, size in members)
    packed = archive.stat().st_size
    if unpacked > max_ratio * packed:
        raise DataError(
            f"archive {archive} would unpack to {unpacked:,} bytes, {unpacked / packed:,.0f} times its {packed:,} "
            f"bytes (the cap is {max_ratio:g}x, download.max_unpack_ratio): refusing a likely archive bomb"
        )
    stats = os.statvfs(root)
    block = stats.f_frsize
    needed = sum(-(-size // block) * block + block for _, size in members)  # whole blocks, one more per entry
    free = stats.f_bavail * stats.f_frsize
    if needed > free:
        raise DataError(f"archive {archive} needs about {needed:,} bytes unpacked, {root} has {free:,} free")


def extract(archive: str | Path, dest: str | Path, *, max_ratio: float) -> Path:
    """Extract a zip or tar(.gz/.bz2/.xz) archive into ``dest``.

    Before anything is written, members with absolute paths, ``..`` components, links, devices or
    sparse data raise DataError, as does an archive whose members add up to more than
    ``max_ratio`` times its own size or more than the free space under ``dest``.
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                infos = zf.infolist()
                _check_members(archive, [(m.filename, m.file_size) for m in infos], root, max_ratio)
                for member in tqdm(infos, desc=f"extract {archive.name}", unit="file"):
                    zf.extract(member, root)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                infos = tf.getmembers()
                for member in infos:
                    if not (member.isfile() or member.isdir()) or member.issparse():
                        raise DataError(f"archive {archive} holds {member.name!r}, which is not a plain file or folder")
                _check_members(archive, [(m.name, m.size) for m in infos], root, max_ratio)
                for member in tqdm(infos, desc=f"extract {archive.name}", unit="file"):
                    tf.extract(member, root, filter="data")
        else:
            raise DataError(f"not a zip or tar archive: {archive}")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise DataError(f"cannot extract {archive}: {' '.join(str(exc).split())}") from exc
    log.info("extracted %s to %s", archive, dest)
    return dest
