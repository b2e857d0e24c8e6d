"""Catalog downloads against a loopback HTTP server: resume after an interruption, md5 checks, the Google
Drive confirmation page, local copies; zip extraction safety; installing original-format TFRecords."""

import hashlib
import http.server
import threading
import zipfile

import numpy as np
import pytest

from dnnlib.util import UserError
from training.data import archive, catalog, download
from training.dataset import open_dataset

PAYLOAD = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
MD5 = hashlib.md5(PAYLOAD).hexdigest()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.cut_next = False  # drop the connection half-way through the next file response
        self.ranges: list[str | None] = []
        self.confirm_page = False

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802 - http.server API
        server = self.server
        if self.path.startswith("/uc") and server.confirm_page and "confirm=" not in self.path:
            page = (f'<html><body><form id="download-form" action="{server.url}/uc" method="get">'
                    '<input type="hidden" name="id" value="abc"><input type="hidden" name="confirm" value="t">'
                    '<input type="hidden" name="uuid" value="u1"></form></body></html>').encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
            return
        if self.path.startswith("/quota"):
            page = b"<html>Too many users have viewed or downloaded this file recently.</html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
            return
        header = self.headers.get("Range")
        server.ranges.append(header)
        start = int(header.split("=")[1].rstrip("-")) if header else 0
        body = PAYLOAD[start:]
        self.send_response(206 if header else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        if header:
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        self.end_headers()
        if server.cut_next:
            server.cut_next = False
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(body)


@pytest.fixture()
def server():
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_interrupted_download_resumes(tmp_path, server):
    dest = tmp_path / "downloads" / "file.bin"
    server.cut_next = True
    with pytest.raises(UserError, match="download interrupted after .* run the same command again to resume"):
        download.download(f"{server.url}/file.bin", dest, MD5, progress=False)
    part = dest.with_name("file.bin.part")
    kept = part.stat().st_size
    assert 0 < kept < len(PAYLOAD) and not dest.exists()
    download.download(f"{server.url}/file.bin", dest, MD5, progress=False)
    assert dest.read_bytes() == PAYLOAD and not part.exists()
    assert server.ranges[-1] == f"bytes={kept}-"  # asked only for the missing bytes
    requests_before = len(server.ranges)
    download.download(f"{server.url}/file.bin", dest, MD5, progress=False)  # complete: re-used, not fetched
    assert len(server.ranges) == requests_before


def test_md5_mismatch_deletes_the_download(tmp_path, server):
    dest = tmp_path / "f.bin"
    with pytest.raises(UserError, match="md5 mismatch"):
        download.download(f"{server.url}/f.bin", dest, "0" * 32, progress=False)
    assert not dest.exists() and not dest.with_name("f.bin.part").exists()


def test_google_drive_style_confirmation_page_is_followed(tmp_path, server):
    server.confirm_page = True
    dest = tmp_path / "g.bin"
    download.download(f"{server.url}/uc?id=abc", dest, MD5, progress=False)
    assert dest.read_bytes() == PAYLOAD
    with pytest.raises(UserError, match="web page instead of the file.*--source"):
        download.download(f"{server.url}/quota", tmp_path / "q.bin", MD5, progress=False)


def test_gdrive_url_adds_export_download():
    url = download.gdrive_url("https://drive.google.com/uc?id=XYZ")
    assert "id=XYZ" in url and "export=download" in url
    assert download.gdrive_url("http://example.org/a?id=1") == "http://example.org/a?id=1"


def test_local_copy_is_checked(tmp_path):
    src = tmp_path / "mine.bin"
    src.write_bytes(PAYLOAD)
    dest = download.use_local_copy(src, tmp_path / "downloads" / "x.bin", MD5)
    assert dest.read_bytes() == PAYLOAD
    with pytest.raises(UserError, match="md5 differs"):
        download.use_local_copy(src, tmp_path / "downloads" / "y.bin", "f" * 32)
    with pytest.raises(UserError, match="no such file"):
        download.use_local_copy(tmp_path / "nope", tmp_path / "z.bin", MD5)


def test_catalog_matches_spec():
    assert set(catalog.CATALOG) == {"ffhq", "clevr", "cityscapes", "bedrooms"}
    assert catalog.CATALOG["ffhq"].md5 == "74de4f07dc7bfb07c0ad4471fdac5e67"
    assert catalog.CATALOG["bedrooms"].url == "http://dl.yf.io/lsun/scenes/bedroom_train_lmdb.zip"
    assert {k: e.gamma for k, e in catalog.CATALOG.items()} == {
        "ffhq": 10, "clevr": 40, "cityscapes": 20, "bedrooms": 100}
    assert catalog.CATALOG["clevr"].ratio == 0.75 and catalog.CATALOG["cityscapes"].ratio == 0.5


def test_extract_zip_refuses_escaping_members_and_symlinks(tmp_path):
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("ok/a.txt", "fine")
        zf.writestr("ok/../../escape.txt", "bad")
    with pytest.raises(UserError, match="escapes the archive folder"):
        archive.extract_zip(bad, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists() and not (tmp_path / "escape.txt").exists()
    link = tmp_path / "link.zip"
    with zipfile.ZipFile(link, "w") as zf:
        info = zipfile.ZipInfo("ok/link")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(UserError, match="symbolic link"):
        archive.extract_zip(link, tmp_path / "out", progress=False)
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(UserError, match="not a readable zip archive"):
        archive.extract_zip(tmp_path / "broken.zip", tmp_path / "out", progress=False)


def test_install_zipped_original_tfrecords(tmp_path):
    from test_data_loader import _write_original

    images = np.random.default_rng(1).integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    _write_original(tmp_path / "src" / "clevr", "clevr", images, shards=2)
    zip_path = tmp_path / "clevr.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        for p in sorted((tmp_path / "src").rglob("*.tfrecords*")):
            zf.write(p, p.relative_to(tmp_path / "src").as_posix())
    md5 = download.file_md5(zip_path, progress=False)
    entry = catalog.CatalogEntry("clevr", "http://unused.invalid/clevr.zip", md5, "clevr.zip", catalog.TFRECORD_ZIP,
                                 "1 KB", "1 KB", 5, 0.75, 2, 8, 40.0)
    data_dir = tmp_path / "ds"
    downloaded = catalog.fetch(entry, data_dir, str(zip_path), progress=False)
    path = catalog.install_tfrecords(entry, downloaded, data_dir, overwrite=False, progress=False)
    ds = open_dataset(path)
    assert (ds.name, ds.ratio, ds.resolution, ds._counts) == ("clevr", 0.75, 8, [3, 2])
    got = np.concatenate([b.numpy() for b in ds.tf_dataset(5, shuffle=False, repeat=False)])
    np.testing.assert_array_equal(got, images)
    with pytest.raises(UserError, match="already exists"):
        catalog.install_tfrecords(entry, downloaded, data_dir, overwrite=False, progress=False)
    assert sorted(p.name for p in data_dir.iterdir()) == ["clevr", "downloads"]
