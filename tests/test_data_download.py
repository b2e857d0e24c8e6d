"""Catalog downloads against a loopback HTTP server (through dnnlib.download.open_url): resume after an
interrupted run, md5 checks, re-use, local copies; zip extraction safety; installing original TFRecords."""

import hashlib
import http.server
import threading
import zipfile

import numpy as np
import pytest

from dnnlib.util import UserError
from training.data import archive, catalog
from training.data.loader import open_dataset

PAYLOAD = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
MD5 = hashlib.md5(PAYLOAD).hexdigest()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.cut = 0  # drop the connection half-way through this many next file responses
        self.ranges: list[str | None] = []

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802 - http.server API
        server = self.server
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
        if server.cut:
            server.cut -= 1
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


def _entry(url, md5=MD5, name="file.bin", kind=catalog.FILE):
    return catalog.CatalogEntry("t", url, md5, name, kind, "1 KB", "1 KB", 1, 1.0, 1, 8, 10.0)


def test_interrupted_catalog_download_resumes_on_the_next_run(tmp_path, server):
    entry = _entry(f"{server.url}/file.bin")
    server.cut = 10  # every attempt of this run is cut half-way
    with pytest.raises(UserError, match="are kept in .*: run the same command again to resume"):
        catalog.fetch(entry, tmp_path, None, progress=False)
    partial = next((tmp_path / "downloads").glob("*.partial"))
    kept = partial.stat().st_size
    assert 0 < kept < len(PAYLOAD)
    server.cut = 0
    path = catalog.fetch(entry, tmp_path, None, progress=False)
    assert path.read_bytes() == PAYLOAD and path.name.endswith("file.bin")
    assert server.ranges[-1] is not None and int(server.ranges[-1][6:-1]) >= kept  # asked only for the rest
    requests_before = len(server.ranges)
    assert catalog.fetch(entry, tmp_path, None, progress=False) == path  # complete: re-used, not fetched
    assert len(server.ranges) == requests_before


def test_md5_mismatch_is_refused(tmp_path, server):
    with pytest.raises(UserError, match="md5"):
        catalog.fetch(_entry(f"{server.url}/f.bin", md5="0" * 32), tmp_path, None, progress=False)
    assert not any(p.name.endswith("f.bin") for p in (tmp_path / "downloads").iterdir())


def test_local_copy_is_checked(tmp_path):
    src = tmp_path / "mine.bin"
    src.write_bytes(PAYLOAD)
    assert catalog.fetch(_entry("http://unused.invalid/x"), tmp_path, str(src), progress=False) == src
    with pytest.raises(UserError, match="md5"):
        catalog.fetch(_entry("http://unused.invalid/x", md5="f" * 32), tmp_path, str(src), progress=False)
    with pytest.raises(UserError, match="not found"):
        catalog.fetch(_entry("http://unused.invalid/x"), tmp_path, str(tmp_path / "nope"), progress=False)


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
    from data_helpers import write_original

    images = np.random.default_rng(1).integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    write_original(tmp_path / "src" / "clevr", "clevr", images, shards=2)
    zip_path = tmp_path / "clevr.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        for p in sorted((tmp_path / "src").rglob("*.tfrecords*")):
            zf.write(p, p.relative_to(tmp_path / "src").as_posix())
    md5 = hashlib.md5(zip_path.read_bytes()).hexdigest()
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
    assert sorted(p.name for p in data_dir.iterdir()) == ["clevr"]  # --source is used in place


def test_install_single_original_tfrecord_file(tmp_path):
    from data_helpers import write_original

    images = np.random.default_rng(2).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    write_original(tmp_path / "src", "ffhq", images, shards=1)
    src = tmp_path / "src" / "ffhq-r03.tfrecords1of1"
    md5 = hashlib.md5(src.read_bytes()).hexdigest()
    entry = catalog.CatalogEntry("ffhq", "http://unused.invalid/ffhq-r03.tfrecords1of1", md5, src.name, catalog.FILE,
                                 "1 KB", "1 KB", 3, 1.0, 1, 8, 10.0)
    path = catalog.install_tfrecords(entry, catalog.fetch(entry, tmp_path / "ds", str(src), progress=False),
                                     tmp_path / "ds", overwrite=False, progress=False)
    ds = open_dataset(path)
    assert (ds.name, ds.resolution, ds.num_images, ds.kind) == ("ffhq", 8, 3, "original")
    assert src.exists()  # the user's file is linked or copied, never moved


def test_cli_catalog_flows_with_local_copies(tmp_path, capsys, monkeypatch):
    """--cityscapes (zipped TFRecords) and --bedrooms (zipped LMDB, converted) end to end from --source files."""
    import dataclasses
    import io

    import lmdb
    from PIL import Image

    from data_helpers import run_cli, write_original

    write_original(tmp_path / "src" / "cityscapes", "cityscapes", np.zeros((2, 8, 8, 3), np.uint8), shards=1)
    city_zip = tmp_path / "cityscapes.zip"
    with zipfile.ZipFile(city_zip, "w") as zf:
        for p in (tmp_path / "src").rglob("*.tfrecords*"):
            zf.write(p, p.relative_to(tmp_path / "src").as_posix())
    images = np.random.default_rng(4).integers(0, 256, (3, 16, 12, 3), dtype=np.uint8)  # portrait, like LSUN
    env = lmdb.open(str(tmp_path / "bedroom_train_lmdb"), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for i, img in enumerate(images):
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="WEBP", lossless=True)
            txn.put(f"{i:04d}".encode(), buf.getvalue())
    env.close()
    bed_zip = tmp_path / "bedroom_train_lmdb.zip"
    with zipfile.ZipFile(bed_zip, "w") as zf:
        for p in (tmp_path / "bedroom_train_lmdb").iterdir():
            zf.write(p, f"bedroom_train_lmdb/{p.name}")
    md5 = lambda p: hashlib.md5(p.read_bytes()).hexdigest()  # noqa: E731
    monkeypatch.setitem(catalog.CATALOG, "cityscapes",
                        dataclasses.replace(catalog.CATALOG["cityscapes"], md5=md5(city_zip)))
    monkeypatch.setitem(catalog.CATALOG, "bedrooms",
                        dataclasses.replace(catalog.CATALOG["bedrooms"], md5=md5(bed_zip), resolution=8))
    data_dir = str(tmp_path / "ds")
    status, out, _ = run_cli(capsys, "--cityscapes", "--source", str(city_zip), "--data-dir", data_dir)
    assert status == 0 and "Installed cityscapes" in out
    city = open_dataset(tmp_path / "ds" / "cityscapes")
    assert (city.ratio, city.num_images, city.resolution) == (0.5, 2, 8)
    status, out, msgs = run_cli(capsys, "--bedrooms", "--source", str(bed_zip), "--max-images", "2",
                                "--data-dir", data_dir)
    assert status == 0 and "Wrote 2 images of 8x8" in out
    assert any("FID-50k will reuse real images" in m for m in msgs)
    bed = open_dataset(tmp_path / "ds" / "bedrooms")
    assert (bed.num_images, bed.encoding, abs(bed.ratio - 188 / 256) < 1e-9) == (2, "png", True)
    assert (tmp_path / "ds" / "downloads" / "bedroom_train_lmdb" / ".extracted").is_file()
    assert not (tmp_path / "bedroom_train_lmdb" / ".extracted").exists()  # nothing written next to --source
    status, _, msgs = run_cli(capsys, "--bedrooms", "--source", str(bed_zip), "--data-dir", data_dir)
    assert status == 2 and "already exists" in msgs[0]
