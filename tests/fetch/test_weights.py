"""occo.fetch.weights: local copies, the registry copy under models/pretrained, verified downloads, clear errors."""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from occo.fetch import registry as registry_module
from occo.fetch.weights import (
    WeightsUnavailableError,
    default_location,
    resolve_vgg19,
    resolve_weights,
    torch_hub_file,
    vgg19_path,
)


@pytest.fixture()
def server(tmp_path: Path):
    """A loopback HTTP server over tmp_path/www."""
    www = tmp_path / "www"
    www.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(www), **kwargs)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _registry(tmp_path: Path, base: str, blobs: dict[str, bytes], monkeypatch) -> None:
    sha = {k: hashlib.sha256(v).hexdigest() for k, v in blobs.items()}
    text = f"""
datasets:
  - name: D
    homepage: h
    archives: []
    splits: {{test: {{ir: ir, vi: vi}}}}
weights:
  - name: single
    url: {base}/one.pth
    filename: one.pth
    sha256: {sha["one.pth"]}
  - name: folder
    files:
      - {{url: {base}/config.json, filename: config.json, sha256: {sha["config.json"]}}}
      - {{url: {base}/vocab.txt, filename: vocab.txt, sha256: null}}
"""
    path = tmp_path / "registry.yaml"
    path.write_text(text)
    monkeypatch.setattr(registry_module, "REGISTRY_PATH", path)


BLOBS = {"one.pth": b"weights" * 100, "config.json": b"{}", "vocab.txt": b"[CLS]\n[SEP]\n"}


@pytest.fixture()
def served(tmp_path: Path, server, monkeypatch) -> Path:
    """BLOBS on the server and in the registry; returns the www folder."""
    www, base = server
    for name, blob in BLOBS.items():
        (www / name).write_bytes(blob)
    _registry(tmp_path, base, BLOBS, monkeypatch)
    return www


def test_downloads_single_file_and_folder_then_reuses_them(tmp_path, served):
    www = served
    root = tmp_path / "repo"
    one = resolve_weights("single", None, param="x.weights", root=root)
    assert one == root / "models/pretrained/one.pth" and one.read_bytes() == BLOBS["one.pth"]
    folder = resolve_weights("folder", None, param="x.folder", root=root)
    assert folder == default_location("folder", root)
    names = ["config.json", "config.json.sha256", "vocab.txt", "vocab.txt.sha256"]  # with the download records
    assert sorted(p.name for p in folder.iterdir()) == names
    for name in BLOBS:
        (www / name).unlink()  # present copies are used without the network
    assert resolve_weights("single", None, param="x.weights", root=root) == one


def test_corrupt_copy_is_fetched_again(tmp_path, server, monkeypatch):
    www, base = server
    (www / "one.pth").write_bytes(BLOBS["one.pth"])
    _registry(tmp_path, base, BLOBS, monkeypatch)
    target = tmp_path / "repo/models/pretrained/one.pth"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"truncated")
    resolve_weights("single", None, param="x.weights", root=tmp_path / "repo")
    assert target.read_bytes() == BLOBS["one.pth"]


def test_unreachable_download_names_file_url_and_param(tmp_path, monkeypatch):
    _registry(tmp_path, "http://127.0.0.1:9", BLOBS, monkeypatch)
    with pytest.raises(WeightsUnavailableError) as err:
        resolve_weights("single", None, param="masks.sam_checkpoint", root=tmp_path)
    message = str(err.value)
    assert "one.pth" in message and "http://127.0.0.1:9/one.pth" in message and "masks.sam_checkpoint" in message
    assert "masks.init: random builds the same architecture at random init" in message  # the offline way out
    assert not (tmp_path / "models").exists()  # the folders the failed download made are gone


def test_missing_local_copy_and_no_download(tmp_path, monkeypatch):
    _registry(tmp_path, "http://127.0.0.1:9", BLOBS, monkeypatch)
    with pytest.raises(WeightsUnavailableError, match=r"nowhere\.pth.*x\.weights"):
        resolve_weights("single", "nowhere.pth", param="x.weights", root=tmp_path)
    with pytest.raises(WeightsUnavailableError, match="config.json.*vocab.txt.*x.folder"):
        resolve_weights("folder", None, param="x.folder", root=tmp_path, download=False)
    local = tmp_path / "mine.pth"
    local.write_bytes(b"x")
    assert resolve_weights("single", "mine.pth", param="x.weights", root=tmp_path) == local


def test_unknown_name_lists_known_ones():
    with pytest.raises(Exception, match="sam_vit_h"):
        resolve_weights("nope", None, param="p", root=Path("."))


def test_vgg19_lives_in_torchvisions_cache_or_where_the_param_says(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cached = tmp_path / "torch/hub/checkpoints/vgg19-dcbb9e9d.pth"
    assert vgg19_path(None) == torch_hub_file("vgg19-dcbb9e9d.pth") == cached
    assert vgg19_path("my/vgg.pth") == Path("my/vgg.pth")
    (tmp_path / "my").mkdir()
    (tmp_path / "my/vgg.pth").write_bytes(b"x")
    assert resolve_vgg19("my/vgg.pth", root=tmp_path) == tmp_path / "my/vgg.pth"
    with pytest.raises(WeightsUnavailableError, match="train.vgg_weights.*train.vgg_random_init: true"):
        resolve_vgg19("my/none.pth", root=tmp_path)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")  # present: used as it is, nothing downloaded
    assert resolve_vgg19(None, root=tmp_path) == cached


def test_shipped_registry_validates():
    weights = registry_module.load_registry()["weights"]
    assert {"vgg19", "sam_vit_h", "groundingdino_swint_ogc"} <= set(weights)


def test_unpinned_file_is_checked_against_its_download_record(tmp_path, served):
    """vocab.txt has no pinned sha256: the hash recorded at download time guards it afterwards."""
    root = tmp_path / "repo"
    folder = resolve_weights("folder", None, param="x.folder", root=root)
    (folder / "vocab.txt").write_bytes(b"[CLS]\n")  # damaged after the download
    with pytest.raises(WeightsUnavailableError, match=r"vocab\.txt are missing or fail their check.*x\.folder"):
        resolve_weights("folder", None, param="x.folder", root=root, download=False)
    resolve_weights("folder", None, param="x.folder", root=root)
    assert (folder / "vocab.txt").read_bytes() == BLOBS["vocab.txt"]
