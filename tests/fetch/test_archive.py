"""occo.fetch.archive: integrity checks and bounded, safe extraction."""

import io
import os
import tarfile
import zipfile
from types import SimpleNamespace

import pytest

from occo.config import Download
from occo.data.io import DataError
from occo.fetch import archive as archive_module
from occo.fetch.archive import check_archive, extract, is_archive

RATIO = Download().max_unpack_ratio


def _zip(path, members):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _tar(path, members, mode="w:gz"):
    with tarfile.open(path, mode) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("kind", ["zip", "tar.gz", "tar.bz2", "tar.xz"])
def test_extract_archives(tmp_path, kind):
    members = {"top/a.txt": b"a", "top/sub/b.txt": b"b"}
    if kind == "zip":
        archive = _zip(tmp_path / "x.zip", members)
    else:
        archive = _tar(tmp_path / f"x.{kind}", members, mode=f"w:{kind.split('.')[1]}")
    assert is_archive(archive)
    out = extract(archive, tmp_path / "out", max_ratio=RATIO)
    assert (out / "top" / "sub" / "b.txt").read_bytes() == b"b"


@pytest.mark.parametrize("name", ["../evil.txt", "ok/../../evil.txt", "/abs/evil.txt"])
def test_extract_rejects_traversal(tmp_path, name):
    for archive in (_zip(tmp_path / "t.zip", {name: b"x"}), _tar(tmp_path / "t.tar.gz", {name: b"x"})):
        with pytest.raises(DataError, match="unsafe path"):
            extract(archive, tmp_path / "out", max_ratio=RATIO)
    assert not (tmp_path / "evil.txt").exists()
    assert list((tmp_path / "out").iterdir()) == []


def test_extract_rejects_links(tmp_path):
    archive = tmp_path / "l.tar"
    with tarfile.open(archive, "w") as tf:
        info = tarfile.TarInfo("link")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tf.addfile(info)
    with pytest.raises(DataError, match="not a plain file"):
        extract(archive, tmp_path / "out", max_ratio=RATIO)


def test_extract_rejects_non_archive(tmp_path):
    (tmp_path / "x.zip").write_bytes(b"not an archive at all")
    assert not is_archive(tmp_path / "x.zip")
    with pytest.raises(DataError, match="not a zip or tar archive"):
        extract(tmp_path / "x.zip", tmp_path / "out", max_ratio=RATIO)


def test_zip_bomb_is_refused_before_writing(tmp_path):
    """10 MB of zeros deflate to ~10 KB: a ratio near 1000, far past the cap of 100."""
    archive = _zip(tmp_path / "bomb.zip", {"zeros.bin": b"\0" * 10_000_000})
    assert archive.stat().st_size < 100_000
    with pytest.raises(DataError) as err:
        extract(archive, tmp_path / "out", max_ratio=RATIO)
    msg = str(err.value)
    assert "bomb.zip" in msg and "10,000,000 bytes" in msg and "download.max_unpack_ratio" in msg
    assert list((tmp_path / "out").iterdir()) == []
    extract(archive, tmp_path / "ok", max_ratio=5000)  # a higher cap lets it through
    assert (tmp_path / "ok" / "zeros.bin").stat().st_size == 10_000_000


def test_tar_bomb_is_refused(tmp_path):
    archive = _tar(tmp_path / "bomb.tar.gz", {"a/zeros.bin": b"\0" * 5_000_000, "a/b.txt": b"b"})
    with pytest.raises(DataError, match="likely archive bomb"):
        extract(archive, tmp_path / "out", max_ratio=RATIO)
    assert list((tmp_path / "out").iterdir()) == []


def test_extraction_stops_before_the_disk_fills(tmp_path, monkeypatch):
    archive = _zip(tmp_path / "x.zip", {"a.bin": os.urandom(50_000), "b.bin": os.urandom(50_000)})
    real = os.statvfs(tmp_path)
    monkeypatch.setattr(
        archive_module.os,
        "statvfs",
        lambda _: SimpleNamespace(f_frsize=real.f_frsize, f_bavail=80_000 // real.f_frsize),
    )
    with pytest.raises(DataError, match=r"x\.zip needs about .* free"):
        extract(archive, tmp_path / "out", max_ratio=RATIO)
    assert list((tmp_path / "out").iterdir()) == []


def test_check_archive_finds_truncation(tmp_path):
    payload = {"top/a.bin": os.urandom(200_000), "top/b.bin": os.urandom(200_000)}
    for archive in (_zip(tmp_path / "x.zip", payload), _tar(tmp_path / "x.tar.gz", payload)):
        check_archive(archive)
        cut = archive.with_name("cut-" + archive.name)
        cut.write_bytes(archive.read_bytes()[: archive.stat().st_size * 2 // 3])
        with pytest.raises(DataError, match="cut-x"):
            check_archive(cut)
    corrupt = bytearray((tmp_path / "x.zip").read_bytes())
    corrupt[100] ^= 0xFF  # inside the first member's data: the CRC fails
    (tmp_path / "bad.zip").write_bytes(bytes(corrupt))
    with pytest.raises(DataError, match="bad.zip"):
        check_archive(tmp_path / "bad.zip")
