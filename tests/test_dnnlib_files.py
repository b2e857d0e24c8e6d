"""The helpers that exist once in dnnlib: byte sizes, file digests, folder swaps, `.npy` headers, uint8 quantization."""

import hashlib
import io
import os

import numpy as np
import pytest
import tensorflow as tf

from dnnlib import files
from dnnlib.disk import format_bytes
from dnnlib.npy import read_npy_header
from dnnlib.tflib.ops.quantize import quantize, quantize_numpy


@pytest.mark.parametrize("count, text", [(None, "?"), (0, "0 B"), (-5, "0 B"), (812, "812 B"), (1023, "1023 B"),
                                         (1024, "1.0 KiB"), (1536, "1.5 KiB"), (300 << 20, "300.0 MiB"),
                                         (int(1.25 * (1 << 30)), "1.2 GiB"), (4 << 40, "4.0 TiB"),
                                         (5000 << 40, "5000.0 TiB"), (1500.7, "1.5 KiB")])
def test_format_bytes_uses_binary_units(count, text):
    assert format_bytes(count) == text


def test_file_digests_match_hashlib_and_read_the_file_once(tmp_path, monkeypatch):
    data = np.random.RandomState(1).bytes(files.DIGEST_BLOCK_BYTES * 2 + 123)  # several blocks, a partial last one
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    opened = []
    real_open = open
    monkeypatch.setattr("builtins.open", lambda *a, **k: opened.append(a[0]) or real_open(*a, **k))
    got = files.file_digests(path, ("md5", "sha256"))
    assert got == {"md5": hashlib.md5(data).hexdigest(), "sha256": hashlib.sha256(data).hexdigest()}
    assert opened == [path]
    assert files.file_digests(tmp_path / "not read", ()) == {}  # nothing asked: the file is not even opened
    assert files.file_sha256(str(path)) == hashlib.sha256(data).hexdigest()
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert files.file_sha256(empty) == hashlib.sha256(b"").hexdigest()
    with pytest.raises(ValueError):
        files.file_digests(path, ("no-such-hash",))


def test_replace_folder_puts_the_new_folder_in_place_and_leaves_nothing_behind(tmp_path):
    target = tmp_path / "data"
    for version in ("one", "two"):
        new = tmp_path / f".data.partial-{version}"
        new.mkdir()
        (new / "file.txt").write_text(version)
        files.replace_folder(new, target)
        assert (target / "file.txt").read_text() == version and not new.exists()
        assert sorted(os.listdir(tmp_path)) == ["data"]  # the old folder is gone too


def test_replace_folder_keeps_the_old_folder_when_the_new_one_cannot_be_moved(tmp_path):
    target = tmp_path / "data"
    target.mkdir()
    (target / "file.txt").write_text("old")
    with pytest.raises(OSError):
        files.replace_folder(tmp_path / "missing", target)
    # the old folder was moved aside, not deleted: it is still there under its aside name
    aside = [n for n in os.listdir(tmp_path) if n.startswith(".data.old-")]
    assert len(aside) == 1 and (tmp_path / aside[0] / "file.txt").read_text() == "old"


def _npy(array, version):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, version=version)
    buf.seek(0)
    return buf


@pytest.mark.parametrize("version", [(1, 0), (2, 0)])
def test_read_npy_header_returns_the_declaration_and_stops_at_the_data(version):
    array = np.arange(24, dtype="<f4").reshape(2, 3, 4)
    f = _npy(array, version)
    shape, fortran, dtype = read_npy_header(f)
    assert (shape, fortran, dtype) == ((2, 3, 4), False, np.dtype("<f4"))
    assert all(type(n) is int for n in shape)
    assert np.frombuffer(f.read(), "<f4").reshape(shape).tolist() == array.tolist()
    assert read_npy_header(_npy(np.asfortranarray(array), version))[1] is True


def test_read_npy_header_refuses_other_versions_and_other_files():
    f = _npy(np.zeros(3, np.float32), (3, 0))
    with pytest.raises(ValueError, match="unsupported .npy format version 3.0"):
        read_npy_header(f)
    with pytest.raises(ValueError):
        read_npy_header(io.BytesIO(b"PK\x03\x04 not an npy file at all"))


def test_quantize_in_tensorflow_and_numpy_gives_identical_bytes():
    rng = np.random.RandomState(3)
    x = rng.uniform(-3.0, 3.0, size=(4, 8, 8, 3)).astype(np.float32)  # about 2/3 of the values out of [-1, 1]
    halves = (np.arange(-4, 516) / 2.0 / 127.5 - 1.0).astype(np.float32)  # every k / 2 step: rounding ties
    special = np.array([-1.0, 1.0, 0.0, -0.999, 1e30, -1e30, np.inf, -np.inf], np.float32)
    flat = np.concatenate([x.ravel(), halves, special])
    for values in (x, flat.reshape(1, 1, -1, 1), x.astype(np.float16), x.astype(np.float64)):
        ours = quantize_numpy(values)
        theirs = quantize(tf.constant(values)).numpy()
        assert ours.dtype == theirs.dtype == np.uint8 and ours.shape == values.shape
        assert ours.tobytes() == theirs.tobytes()
    edges = quantize_numpy(special)
    assert edges.tolist() == [0, 255, 128, 0, 255, 0, 255, 0]
