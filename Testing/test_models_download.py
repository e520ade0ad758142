"""Downloads against a real HTTP server on loopback: progress, checksum refusal, resume; catalog install."""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import shutil
import threading
from pathlib import Path
from typing import Dict, Iterator

import pytest
from voxmmsd.errors import ModelError
from voxmmsd.models import cache
from voxmmsd.models.catalog import install, load_catalog, resolve_model
from voxmmsd.models.download import download


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``files`` with Range support; ``cut`` = bytes after which the first response is dropped."""

    files: Dict[str, bytes] = {}
    cut: Dict[str, int] = {}
    ranges_seen: list = []
    honour_range = True

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        data = self.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start = 0
        rng = self.headers.get("Range")
        self.ranges_seen.append(rng)
        if rng and self.honour_range:
            start = int(re.match(r"bytes=(\d+)-", rng).group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = self.cut.pop(self.path, None)
        self.wfile.write(body[:cut] if cut is not None else body)
        self.wfile.flush()
        if cut is not None:
            self.close_connection = True


@pytest.fixture
def server() -> Iterator[str]:
    Handler.files, Handler.cut, Handler.ranges_seen, Handler.honour_range = {}, {}, [], True
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def payload(n: int = 300_000) -> bytes:
    return bytes((i * 7919) % 251 for i in range(n))


def test_download_with_progress_and_checksum(server: str, tmp_path: Path) -> None:
    data = payload()
    Handler.files["/m.bin"] = data
    seen = []
    out = download(f"{server}/m.bin", tmp_path / "m.bin", hashlib.sha256(data).hexdigest(),
                   progress=lambda d, t: seen.append((d, t)))
    assert out.read_bytes() == data
    assert seen[-1] == (len(data), len(data)) and seen[0][0] == 0


def test_checksum_mismatch_is_refused_and_nothing_kept(server: str, tmp_path: Path) -> None:
    Handler.files["/m.bin"] = payload()
    with pytest.raises(ModelError, match="refused"):
        download(f"{server}/m.bin", tmp_path / "m.bin", "0" * 64)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_download_resumes_with_range(server: str, tmp_path: Path) -> None:
    data = payload()
    Handler.files["/m.bin"] = data
    Handler.cut["/m.bin"] = 100_000
    digest = hashlib.sha256(data).hexdigest()
    with pytest.raises(ModelError, match="interrupted"):
        download(f"{server}/m.bin", tmp_path / "m.bin", digest, size=len(data))
    part = tmp_path / "m.bin.part"
    assert part.stat().st_size == 100_000 and not (tmp_path / "m.bin").exists()
    download(f"{server}/m.bin", tmp_path / "m.bin", digest, size=len(data))
    assert (tmp_path / "m.bin").read_bytes() == data and not part.exists()
    assert Handler.ranges_seen[-1] == "bytes=100000-"


def test_server_ignoring_range_restarts_cleanly(server: str, tmp_path: Path) -> None:
    data = payload()
    Handler.files["/m.bin"] = data
    Handler.honour_range = False
    (tmp_path / "m.bin.part").write_bytes(b"stale bytes from elsewhere")
    download(f"{server}/m.bin", tmp_path / "m.bin", hashlib.sha256(data).hexdigest())
    assert (tmp_path / "m.bin").read_bytes() == data


def test_http_error_is_clear(server: str, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="HTTP 404"):
        download(f"{server}/missing.zip", tmp_path / "x.zip", "0" * 64)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VOXMMSD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("VOXMMSD_RESOURCES", str(tmp_path / "resources"))
    (tmp_path / "resources").mkdir()
    return tmp_path / "home"


def _catalog(tmp_path: Path, server: str, archive: bytes, sha: str = "") -> Path:
    cat = tmp_path / "resources" / "catalog.json"
    cat.write_text(json.dumps({"schema_version": 1, "models": [{
        "id": "tiny", "version": "0.1", "name": "Tiny test model", "url": f"{server}/tiny.zip",
        "size": len(archive), "sha256": sha or hashlib.sha256(archive).hexdigest()}]}), encoding="utf-8")
    return cat


def test_install_from_catalog_then_resolve_verify_remove(server: str, tmp_path: Path, home: Path) -> None:
    from support.packages import build_tiny_package

    pkg_dir = build_tiny_package(tmp_path / "src" / "tiny", export_onnx=False)
    archive = Path(shutil.make_archive(str(tmp_path / "tiny"), "zip", root_dir=tmp_path / "src"))
    data = archive.read_bytes()
    Handler.files["/tiny.zip"] = data
    _catalog(tmp_path, server, data)
    assert [e.id for e in load_catalog()] == ["tiny"]
    with pytest.raises(ModelError, match="Unknown model 'tiny'.*models install tiny"):
        resolve_model("tiny")
    pkg = install("tiny")
    assert pkg.folder == home / "models" / "tiny" / "0.1"
    assert resolve_model("tiny").id == "tiny" and resolve_model("tiny@0.1").version == "0.1"
    assert resolve_model(str(pkg_dir)).folder == pkg_dir
    assert not list((home / "downloads").glob("*.zip*"))
    cache.remove("tiny")
    assert cache.installed() == []


def test_install_refuses_a_bad_checksum(server: str, tmp_path: Path, home: Path) -> None:
    Handler.files["/tiny.zip"] = b"PK not really"
    _catalog(tmp_path, server, b"PK not really", sha="1" * 64)
    with pytest.raises(ModelError, match="refused"):
        install("tiny")
    assert cache.installed() == []


def test_unknown_model_id(home: Path) -> None:
    with pytest.raises(ModelError, match="Unknown model 'no-such-model'"):
        resolve_model("no-such-model")
