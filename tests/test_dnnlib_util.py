"""Tests for dnnlib.util (Logger, format_time) and dnnlib.download.open_url (against a local HTTP server on
127.0.0.1)."""

import hashlib
import http.server
import os
import socket
import sys
import threading
import urllib.parse

import numpy as np
import pytest

from dnnlib import download, util
from dnnlib.util import UserError

PAYLOAD = np.random.RandomState(0).bytes(300_000)
PAYLOAD_MD5 = hashlib.md5(PAYLOAD).hexdigest()
PAYLOAD_SHA256 = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD at several paths with different behaviours; records every request."""

    def log_message(self, *args):  # keep test output quiet
        pass

    def _send_body(self, body, content_type="application/octet-stream", status=200, extra=None, cut=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body if cut is None else body[:cut])
        self.wfile.flush()

    def do_GET(self):
        srv = self.server
        parsed = urllib.parse.urlparse(self.path)
        query = dict(urllib.parse.parse_qsl(parsed.query))
        srv.requests.append((parsed.path, query, self.headers.get("Range")))
        rng = self.headers.get("Range")
        if parsed.path == "/file.bin":
            if rng:
                start = int(rng.split("=")[1].split("-")[0])
                self._send_body(PAYLOAD[start:], status=206,
                                extra={"Content-Range": f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}"})
            else:
                self._send_body(PAYLOAD)
        elif parsed.path == "/norange.bin":  # ignores Range, always sends everything
            self._send_body(PAYLOAD)
        elif parsed.path == "/flaky.bin":  # first full request is cut in the middle, later ones honour Range
            if rng:
                start = int(rng.split("=")[1].split("-")[0])
                self._send_body(PAYLOAD[start:], status=206,
                                extra={"Content-Range": f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}"})
            else:
                self._send_body(PAYLOAD, cut=len(PAYLOAD) // 3)
                self.close_connection = True
        elif parsed.path == "/missing.bin":
            self._send_body(b"not found", content_type="text/plain", status=404)
        elif parsed.path == "/uc" and "confirm" not in query:  # Drive warning page: form (current) or cookie (old)
            if query.get("id") == "cookie":
                self._send_body(b"<html>warning</html>", content_type="text/html; charset=utf-8",
                                extra={"Set-Cookie": "download_warning_123=TOKEN42; Path=/"})
            elif query.get("id") == "form":
                page = (b'<html><body><form id="download-form" action="/download" method="get">'
                        b'<input type="hidden" name="id" value="form"><input type="hidden" name="export" '
                        b'value="download"><input type="hidden" name="confirm" value="t">'
                        b'<input type="hidden" name="uuid" value="abc-123"></form></body></html>')
                self._send_body(page, content_type="text/html; charset=utf-8")
            else:
                self._send_body(b"<html><title>Quota exceeded</title></html>", content_type="text/html")
        elif parsed.path == "/uc" and query.get("confirm") == "TOKEN42":
            self._send_body(PAYLOAD)
        elif parsed.path == "/download" and query == {"id": "form", "export": "download", "confirm": "t",
                                                      "uuid": "abc-123"}:
            self._send_body(PAYLOAD)
        else:
            self._send_body(b"bad request", content_type="text/plain", status=400)


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.requests = []
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    srv.base = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()


def _read(path):
    with open(path, "rb") as f:
        return f.read()


# ---------------------------------------------------------------------------------------------------------------


def test_download_checksum_and_cache_reuse(server, tmp_path):
    url = server.base + "/file.bin"
    path = download.open_url(url, cache_dir=str(tmp_path), md5=PAYLOAD_MD5, sha256=PAYLOAD_SHA256, return_path=True,
                         progress=False)
    assert _read(path) == PAYLOAD
    assert path == download.cache_path_for(url, str(tmp_path))
    assert os.path.dirname(path) == str(tmp_path)
    assert not os.path.exists(path + ".partial")
    n = len(server.requests)
    with download.open_url(url, cache_dir=str(tmp_path), md5=PAYLOAD_MD5, progress=False) as f:  # cache hit
        assert f.read() == PAYLOAD
    assert len(server.requests) == n


def test_cache_dir_from_environment(server, tmp_path, monkeypatch):
    monkeypatch.setenv("GANFORMER_CACHE_DIR", str(tmp_path / "envcache"))
    path = download.open_url(server.base + "/file.bin", return_path=True, progress=False, file_name="x.pkl")
    assert path.startswith(str(tmp_path / "envcache")) and path.endswith("_x.pkl")
    assert _read(path) == PAYLOAD


def test_resume_from_partial_file(server, tmp_path):
    url = server.base + "/file.bin"
    dest = download.cache_path_for(url, str(tmp_path))
    with open(dest + ".partial", "wb") as f:
        f.write(PAYLOAD[:100_000])
    path = download.open_url(url, cache_dir=str(tmp_path), sha256=PAYLOAD_SHA256, return_path=True, progress=False)
    assert _read(path) == PAYLOAD
    assert server.requests == [("/file.bin", {}, "bytes=100000-")]


def test_server_without_range_support_restarts(server, tmp_path):
    url = server.base + "/norange.bin"
    dest = download.cache_path_for(url, str(tmp_path))
    with open(dest + ".partial", "wb") as f:
        f.write(b"x" * 5000)  # garbage prefix must be discarded, not kept
    path = download.open_url(url, cache_dir=str(tmp_path), md5=PAYLOAD_MD5, return_path=True, progress=False)
    assert _read(path) == PAYLOAD


def test_interrupted_download_is_resumed_by_retry(server, tmp_path):
    url = server.base + "/flaky.bin"
    path = download.open_url(url, cache_dir=str(tmp_path), md5=PAYLOAD_MD5, return_path=True, progress=False)
    assert _read(path) == PAYLOAD
    ranges = [r[2] for r in server.requests]
    assert len(ranges) == 2 and ranges[0] is None
    assert 0 < int(ranges[1][len("bytes="):-1]) <= len(PAYLOAD) // 3  # resumed, not restarted


def test_checksum_mismatch_removes_file(server, tmp_path):
    url = server.base + "/file.bin"
    with pytest.raises(UserError, match="md5") as info:
        download.open_url(url, cache_dir=str(tmp_path), md5="0" * 32, progress=False)
    assert url in str(info.value)
    dest = download.cache_path_for(url, str(tmp_path))
    assert not os.path.exists(dest) and not os.path.exists(dest + ".partial")


def test_http_error_is_user_error(server, tmp_path):
    with pytest.raises(UserError, match="HTTP 404"):
        download.open_url(server.base + "/missing.bin", cache_dir=str(tmp_path), progress=False)


def test_unreachable_url_gives_offline_hint(tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens on this port now
    url = f"http://127.0.0.1:{port}/ffhq.pkl"
    with pytest.raises(UserError) as info:
        download.open_url(url, cache_dir=str(tmp_path), num_attempts=2, timeout=5, progress=False, file_name="ffhq.pkl")
    msg = str(info.value)
    assert url in msg and "local file path" in msg
    assert download.cache_path_for(url, str(tmp_path), "ffhq.pkl") in msg
    assert "\n" not in msg


@pytest.mark.parametrize("file_id", ["form", "cookie"])
def test_google_drive_confirm_flow(server, tmp_path, monkeypatch, file_id):
    monkeypatch.setattr(download, "_is_gdrive", lambda url: True)
    path = download.open_url(f"{server.base}/uc?id={file_id}", cache_dir=str(tmp_path), md5=PAYLOAD_MD5,
                         return_path=True, progress=False, file_name="net.pkl")
    assert _read(path) == PAYLOAD
    assert path.endswith("_net.pkl")
    assert len(server.requests) == 2


def test_google_drive_page_without_confirmation(server, tmp_path, monkeypatch):
    monkeypatch.setattr(download, "_is_gdrive", lambda url: True)
    with pytest.raises(UserError, match="Google Drive returned a web page"):
        download.open_url(f"{server.base}/uc?id=quota", cache_dir=str(tmp_path), progress=False)


def test_local_paths_and_file_urls(tmp_path):
    p = tmp_path / "a b.bin"
    p.write_bytes(PAYLOAD)
    assert download.open_url(str(p), return_path=True, md5=PAYLOAD_MD5) == str(p)
    with download.open_url(p.as_uri(), sha256=PAYLOAD_SHA256) as f:
        assert f.read() == PAYLOAD
    with pytest.raises(UserError, match="checksum mismatch"):
        download.open_url(str(p), md5="1" * 32)
    assert p.exists()  # a user's own file is never deleted
    with pytest.raises(UserError, match="file not found"):
        download.open_url(str(tmp_path / "nope.pkl"))
    with pytest.raises(UserError, match="unsupported URL scheme"):
        download.open_url("ftp://example.com/x.pkl")


# ---------------------------------------------------------------------------------------------------------------


def test_logger_tees_and_restores(tmp_path):
    out_before, err_before = sys.stdout, sys.stderr
    log = tmp_path / "log.txt"
    with util.Logger(str(log)) as logger:
        print("hello stdout")
        print("hello stderr", file=sys.stderr)
        logger.flush()
        assert sys.stdout is not out_before
    assert sys.stdout is out_before and sys.stderr is err_before
    text = log.read_text()
    assert "hello stdout" in text and "hello stderr" in text
    print("after close")
    assert "after close" not in log.read_text()


def test_logger_append_mode(tmp_path):
    log = tmp_path / "log.txt"
    log.write_text("first\n")
    logger = util.Logger(str(log), file_mode="a")
    print("second")
    logger.close()
    logger.close()  # idempotent
    assert log.read_text() == "first\nsecond\n"


@pytest.mark.parametrize("seconds,expected", [(0, "0s"), (42.4, "42s"), (185, "3m 05s"), (7385, "2h 03m 05s"),
                                              (93784, "1d 02h 03m"), (-3, "0s")])
def test_format_time(seconds, expected):
    assert util.format_time(seconds) == expected


def test_easydict_kept():
    d = util.EasyDict(a=1)
    d.b = 2
    assert d == {"a": 1, "b": 2} and d.a == 1
    with pytest.raises(AttributeError):
        _ = d.c
