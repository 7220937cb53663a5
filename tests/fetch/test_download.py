import hashlib
import io
import logging
import re
import shutil
import socket
import subprocess
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from occo.data.io import DataError, sha256_file
from occo.fetch.download import check_complete, fetch, record_path, verified

DATA = bytes(range(256)) * 1200  # 307,200 bytes
SHA = hashlib.sha256(DATA).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.files`` with an ETag per file (``server.etags``, None for none).

    Honours ``Range: bytes=N-`` (unless ``server.honour_range`` is off) and ``If-Range`` (a range
    is sent only while the ETag still matches). ``server.send_length`` off leaves out
    Content-Length; ``server.cut`` stops the body after that many bytes and drops the connection.
    """

    def do_GET(self) -> None:
        srv = self.server
        srv.requests.append(self.headers.get("Range"))
        body = srv.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        etag = srv.etags.get(self.path)
        wanted = self.headers.get("Range")
        same = self.headers.get("If-Range") in (None, etag)
        if wanted and srv.honour_range and same:
            start = int(wanted.removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            sent = start + srv.range_shift
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {sent}-{len(body) - 1}/{len(body) + srv.total_shift}")
            self._send(body[sent:], etag)
            return
        self.send_response(200)
        self._send(body, etag)

    def _send(self, body: bytes, etag: str | None) -> None:
        srv = self.server
        if etag is not None:
            self.send_header("ETag", etag)
        if srv.send_length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body if srv.cut is None else body[: srv.cut])

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files = {"/data.bin": DATA}
    srv.etags = {"/data.bin": '"v1"'}
    srv.requests = []
    srv.honour_range = True
    srv.range_shift = 0
    srv.total_shift = 0
    srv.send_length = True
    srv.cut = None
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/data.bin"
    yield srv
    srv.shutdown()
    srv.server_close()


def _interrupted(server, dest, at: int = 1000) -> None:
    """A first download that the server cuts off after ``at`` bytes (its .part is kept)."""
    server.cut = at
    with pytest.raises(DataError, match="run again to resume"):
        fetch(server.url, dest)
    server.cut = None
    assert dest.with_name(dest.name + ".part").stat().st_size == at


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_download_verifies_hash_and_records_it(server, tmp_path):
    dest = fetch(server.url, tmp_path / "sub" / "data.bin", sha256=SHA)
    assert dest.read_bytes() == DATA
    assert sorted(p.name for p in dest.parent.iterdir()) == ["data.bin", "data.bin.sha256"]
    assert record_path(dest).read_text().splitlines() == ["# size: 307200", f"# url: {server.url}", f"{SHA}  data.bin"]
    assert server.requests == [None]


def test_record_is_what_sha256sum_checks(server, tmp_path):
    if shutil.which("sha256sum") is None:
        pytest.skip("no sha256sum")
    dest = fetch(server.url, tmp_path / "data.bin")
    proc = subprocess.run(["sha256sum", "-c", record_path(dest).name], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0 and "data.bin: OK" in proc.stdout


def test_resume_after_interruption(server, tmp_path):
    dest = tmp_path / "data.bin"
    _interrupted(server, dest)
    fetch(server.url, dest, sha256=SHA)
    assert server.requests == [None, "bytes=1000-"]
    assert dest.read_bytes() == DATA
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.bin", "data.bin.sha256"]


def test_resume_after_the_remote_file_changed_starts_over(server, tmp_path):
    """If-Range: the server sends the whole new file instead of the tail of the new one after the old head."""
    dest = tmp_path / "data.bin"
    _interrupted(server, dest)
    new = DATA[::-1]
    server.files["/data.bin"], server.etags["/data.bin"] = new, '"v2"'
    fetch(server.url, dest)
    assert server.requests == [None, "bytes=1000-"]
    assert dest.read_bytes() == new
    assert record_path(dest).read_text().splitlines()[-1] == f"{hashlib.sha256(new).hexdigest()}  data.bin"


def test_no_resume_without_a_validator(server, tmp_path):
    """Without an ETag or Last-Modified date nothing proves the .part is the same remote file."""
    server.etags = {}
    dest = tmp_path / "data.bin"
    _interrupted(server, dest)
    fetch(server.url, dest, sha256=SHA)
    assert server.requests == [None, None]


def test_part_of_unknown_origin_is_not_resumed(server, tmp_path):
    (tmp_path / "data.bin.part").write_bytes(b"garbage" * 100)
    fetch(server.url, tmp_path / "data.bin")
    assert server.requests == [None]
    assert (tmp_path / "data.bin").read_bytes() == DATA


def test_restart_when_server_ignores_range(server, tmp_path):
    dest = tmp_path / "data.bin"
    _interrupted(server, dest)
    server.honour_range = False
    fetch(server.url, dest, sha256=SHA)
    assert server.requests == [None, "bytes=1000-"] and dest.read_bytes() == DATA


def test_restart_on_range_not_satisfiable(server, tmp_path):
    dest = tmp_path / "data.bin"
    _interrupted(server, dest)
    server.files["/data.bin"] = DATA[:500]  # same ETag: a broken server, which answers 416
    fetch(server.url, dest)
    assert server.requests == [None, "bytes=1000-", None]
    assert dest.read_bytes() == DATA[:500]


@pytest.mark.parametrize("shift", ["range", "total"])
def test_bad_content_range_names_the_part_to_delete(server, tmp_path, shift):
    dest = tmp_path / "data.bin"
    _interrupted(server, dest)
    server.range_shift, server.total_shift = (5, 0) if shift == "range" else (0, 7)
    for _ in range(2):  # the same clear message on every run, until the .part is deleted
        with pytest.raises(DataError) as err:
            fetch(server.url, dest, sha256=SHA)
        msg = str(err.value)
        assert msg.startswith(f"cannot resume {server.url}") and f"delete {dest}.part" in msg and "\n" not in msg
    (tmp_path / "data.bin.part").unlink()
    server.range_shift = server.total_shift = 0
    assert fetch(server.url, dest, sha256=SHA).read_bytes() == DATA


def test_body_cut_short_with_content_length(server, tmp_path):
    dest = tmp_path / "data.bin"
    _interrupted(server, dest, at=5000)
    assert not dest.exists() and not record_path(dest).exists()


def test_archive_cut_short_without_content_length_is_not_accepted(server, tmp_path):
    """No Content-Length: only the archive's own structure shows the body was cut short."""
    payload = _zip_bytes({"top/a.bin": bytes(range(256)) * 400, "top/b.txt": b"b" * 1000})
    server.files["/x.zip"], server.etags["/x.zip"] = payload, '"z1"'
    server.send_length, server.cut = False, len(payload) // 2
    url, dest = server.url.replace("data.bin", "x.zip"), tmp_path / "x.zip"
    with pytest.raises(DataError) as err:
        fetch(url, dest)
    msg = str(err.value)
    assert "damaged or cut short" in msg and f"delete {dest}.part" in msg and "\n" not in msg
    assert not dest.exists() and not record_path(dest).exists()
    server.cut = None
    fetch(url, dest)  # resumes from the half it has (same ETag)
    assert dest.read_bytes() == payload and server.requests[-1] == f"bytes={len(payload) // 2}-"


def _tar_bytes(members: dict[str, bytes]) -> tuple[bytes, list[int]]:
    """A plain tar archive and the offsets where each member ends (a cut there leaves whole members only)."""
    buf, ends = io.BytesIO(), []
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
            ends.append(tf.offset)
    return buf.getvalue(), ends


def test_plain_tar_cut_at_a_member_boundary_is_not_accepted(server, tmp_path):
    """No Content-Length and a cut between two members: every member read is whole, only the missing end-of-archive
    blocks (two zero blocks, POSIX) show the body is incomplete. Such a tar used to be accepted."""
    payload, ends = _tar_bytes({"top/a.bin": bytes(range(256)) * 40, "top/b.bin": b"b" * 3000})
    server.files["/x.tar"], server.etags["/x.tar"] = payload, '"t1"'
    server.send_length, server.cut = False, ends[0]
    url, dest = server.url.replace("data.bin", "x.tar"), tmp_path / "x.tar"
    with pytest.raises(DataError) as err:
        fetch(url, dest)
    msg = str(err.value)
    assert "damaged or cut short" in msg and "no end-of-archive marker" in msg and "\n" not in msg
    assert not dest.exists() and not record_path(dest).exists()
    server.cut = None
    assert fetch(url, dest).read_bytes() == payload  # resumes from the first member


def test_registry_size_is_checked_before_downloading(server, tmp_path):
    with pytest.raises(DataError, match="307,200 .*307,201"):
        fetch(server.url, tmp_path / "data.bin", size=len(DATA) + 1)
    assert not (tmp_path / "data.bin").exists()
    assert fetch(server.url, tmp_path / "data.bin", size=len(DATA)).read_bytes() == DATA


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
    with caplog.at_level(logging.WARNING, logger="occo.fetch.download"):
        fetch(server.url, tmp_path / "data.bin")
    assert SHA in caplog.text


def test_unpinned_download_is_verified_on_reuse(server, tmp_path):
    dest = fetch(server.url, tmp_path / "data.bin")
    assert fetch(server.url, dest) == dest and server.requests == [None]  # reused
    dest.write_bytes(DATA[:-1] + b"x")  # same size, other bytes
    fetch(server.url, dest)
    assert server.requests == [None, None] and dest.read_bytes() == DATA
    dest.write_bytes(DATA[:1000])
    fetch(server.url, dest)
    assert server.requests == [None, None, None] and dest.read_bytes() == DATA


def test_file_put_there_by_hand_is_checked_then_recorded(server, tmp_path, caplog):
    dest = tmp_path / "x.zip"
    payload = _zip_bytes({"a.txt": b"a" * 5000})
    dest.write_bytes(payload)
    with caplog.at_level(logging.WARNING, logger="occo.fetch.download"):
        assert verified(dest)
    assert hashlib.sha256(payload).hexdigest() in caplog.text
    assert record_path(dest).read_text().splitlines()[-1] == f"{hashlib.sha256(payload).hexdigest()}  x.zip"
    dest.write_bytes(payload[:-10])  # now it no longer matches its record
    assert not verified(dest)
    record_path(dest).unlink()  # and without the record, the zip itself shows it is cut short
    assert not verified(dest)


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
    with pytest.raises(DataError, match=f"{re.escape(url)}: Not Found"):
        fetch(url, tmp_path / "m.bin")


def test_network_failure_suggests_local_source(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/x.zip"
    with pytest.raises(DataError) as err:
        fetch(url, tmp_path / "x.zip", timeout=5)
    assert url in str(err.value) and "download.datasets.<name>.source" in str(err.value)


def test_check_complete_by_format(tmp_path):
    torch = pytest.importorskip("torch")
    st = pytest.importorskip("safetensors.torch")
    st.save_file({"w": torch.arange(1000, dtype=torch.float32)}, str(tmp_path / "m.safetensors"))
    torch.save({"w": torch.arange(1000)}, tmp_path / "m.pt")  # torch's zip format
    (tmp_path / "c.json").write_text('{"a": [1, 2, 3]}')
    for name in ("m.safetensors", "m.pt", "c.json"):
        path = tmp_path / name
        check_complete(path, name)
        cut = tmp_path / f"cut-{name}"
        cut.write_bytes(path.read_bytes()[: path.stat().st_size - 9])
        with pytest.raises(DataError, match=f"cut-{name}"):
            check_complete(cut, name)
    (tmp_path / "legacy.pth").write_bytes(b"\x80\x02" + b"x" * 100)  # pre-zip torch files cannot be checked
    check_complete(tmp_path / "legacy.pth", "legacy.pth")
