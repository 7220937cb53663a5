import hashlib
import io
import logging
import socket
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from occo.data.download import extract, fetch, is_archive, sha256_file
from occo.data.io import DataError

DATA = bytes(range(256)) * 1200  # 307,200 bytes
SHA = hashlib.sha256(DATA).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.files``; honours ``Range: bytes=N-`` unless ``server.honour_range`` is off."""

    def do_GET(self) -> None:
        srv = self.server
        srv.requests.append(self.headers.get("Range"))
        body = srv.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        wanted = self.headers.get("Range")
        if wanted and srv.honour_range:
            start = int(wanted.removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            sent = start + srv.range_shift
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {sent}-{len(body) - 1}/{len(body)}")
            self.send_header("Content-Length", str(len(body) - sent))
            self.end_headers()
            self.wfile.write(body[sent:])
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files = {"/data.bin": DATA}
    srv.requests = []
    srv.honour_range = True
    srv.range_shift = 0
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/data.bin"
    yield srv
    srv.shutdown()
    srv.server_close()


def test_download_verifies_hash(server, tmp_path):
    dest = fetch(server.url, tmp_path / "sub" / "data.bin", sha256=SHA)
    assert dest.read_bytes() == DATA
    assert sorted(p.name for p in dest.parent.iterdir()) == ["data.bin"]
    assert server.requests == [None]


def test_resume_from_part(server, tmp_path):
    (tmp_path / "data.bin.part").write_bytes(DATA[:1000])
    fetch(server.url, tmp_path / "data.bin", sha256=SHA)
    assert server.requests == ["bytes=1000-"]
    assert (tmp_path / "data.bin").read_bytes() == DATA
    assert not (tmp_path / "data.bin.part").exists()


def test_restart_when_server_ignores_range(server, tmp_path):
    server.honour_range = False
    (tmp_path / "data.bin.part").write_bytes(b"garbage" * 100)
    fetch(server.url, tmp_path / "data.bin", sha256=SHA)
    assert (tmp_path / "data.bin").read_bytes() == DATA


def test_restart_on_range_not_satisfiable(server, tmp_path):
    (tmp_path / "data.bin.part").write_bytes(b"x" * (len(DATA) + 10))
    fetch(server.url, tmp_path / "data.bin", sha256=SHA)
    assert server.requests == [f"bytes={len(DATA) + 10}-", None]
    assert (tmp_path / "data.bin").read_bytes() == DATA


def test_wrong_content_range_fails(server, tmp_path):
    server.range_shift = 5
    (tmp_path / "data.bin.part").write_bytes(DATA[:1000])
    with pytest.raises(DataError, match="cannot resume"):
        fetch(server.url, tmp_path / "data.bin", sha256=SHA)


def test_wrong_hash_deletes_download(server, tmp_path):
    with pytest.raises(DataError) as err:
        fetch(server.url, tmp_path / "data.bin", sha256="0" * 64)
    msg = str(err.value)
    assert server.url in msg and "0" * 64 in msg and SHA in msg
    assert list(tmp_path.iterdir()) == []


def test_sha256_prefix(server, tmp_path):
    fetch(server.url, tmp_path / "a.bin", sha256_prefix=SHA[:8])
    assert sha256_file(tmp_path / "a.bin") == SHA
    with pytest.raises(DataError, match="ffffffff"):
        fetch(server.url, tmp_path / "b.bin", sha256_prefix="ffffffff")
    assert not (tmp_path / "b.bin").exists()


def test_no_hash_logs_computed_one(server, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="occo.data.download"):
        fetch(server.url, tmp_path / "data.bin")
    assert SHA in caplog.text


def test_existing_good_file_is_kept(server, tmp_path):
    (tmp_path / "data.bin").write_bytes(DATA)
    fetch(server.url, tmp_path / "data.bin", sha256=SHA)
    assert server.requests == []


def test_existing_bad_file_is_replaced(server, tmp_path):
    (tmp_path / "data.bin").write_bytes(b"stale")
    fetch(server.url, tmp_path / "data.bin", sha256=SHA)
    assert (tmp_path / "data.bin").read_bytes() == DATA


def test_http_error_names_url(server, tmp_path):
    url = server.url.replace("data.bin", "missing.bin")
    with pytest.raises(DataError, match=f"cannot download {url}: Not Found"):
        fetch(url, tmp_path / "m.bin")


def test_network_failure_suggests_local_source(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/x.zip"
    with pytest.raises(DataError) as err:
        fetch(url, tmp_path / "x.zip", timeout=5)
    assert url in str(err.value) and "download.datasets.<name>.source" in str(err.value)


def _zip(path, members):
    with zipfile.ZipFile(path, "w") as zf:
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
    out = extract(archive, tmp_path / "out")
    assert (out / "top" / "sub" / "b.txt").read_bytes() == b"b"


@pytest.mark.parametrize("name", ["../evil.txt", "ok/../../evil.txt", "/abs/evil.txt"])
def test_extract_rejects_traversal(tmp_path, name):
    for archive in (_zip(tmp_path / "t.zip", {name: b"x"}), _tar(tmp_path / "t.tar.gz", {name: b"x"})):
        with pytest.raises(DataError, match="unsafe path"):
            extract(archive, tmp_path / "out")
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
        extract(archive, tmp_path / "out")


def test_extract_rejects_non_archive(tmp_path):
    (tmp_path / "x.zip").write_bytes(b"not an archive at all")
    assert not is_archive(tmp_path / "x.zip")
    with pytest.raises(DataError, match="not a zip or tar archive"):
        extract(tmp_path / "x.zip", tmp_path / "out")
