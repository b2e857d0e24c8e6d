"""Tests for training.formats.archive: our data-only, versioned network file."""

import json
import os
import pickle
import zipfile

import numpy as np
import pytest

from training.formats import archive as snapshot
from dnnlib.util import UserError

FIXTURE_PKL = os.path.join(os.path.dirname(__file__), "fixtures", "official", "ganformer-ffhq-32", "network.pkl")


def _nets():
    rs = np.random.RandomState(0)
    g_vars = {
        "ltnt_emb/emb": rs.randn(16, 32).astype(np.float32),
        "synthesis/4x4/Conv/weight": rs.randn(3, 3, 8, 8).astype(np.float32),
        "synthesis/4x4/Conv/noise_strength": np.array(np.float32(-0.25)),  # 0-d
        "mapping/AttLayer_0/weight_query": rs.randn(4, 4).astype(np.float32),
        "special": np.array([np.nan, -0.0, np.inf, 1e-45], np.float32),  # NaN payload, -0, inf, denormal
        "counter": np.array(7, np.int64),
        "empty": np.zeros((0, 3), np.float32),
        "fortran": np.asfortranarray(rs.randn(3, 5).astype(np.float64)),
    }
    d_vars = {"32x32/FromRGB/weight": rs.randn(1, 1, 3, 8).astype(np.float32), "Output/bias": np.ones(1, np.float32)}
    g_cfg = {"resolution": 32, "components_num": 16, "attention": {"heads": 1, "kmeans": True}, "pos": None,
             "ratio": 0.75, "name": "ganformer-ffhq"}
    gs_vars = {k: v + 1 for k, v in g_vars.items()}
    return {"G": (g_cfg, g_vars), "D": ({"resolution": 32}, d_vars), "Gs": (g_cfg, gs_vars)}


def test_round_trip_is_bitwise_exact(tmp_path):
    nets = _nets()
    path = tmp_path / "network-snapshot-000010.pkl"
    metadata = {"kimg": 10, "created": "2024-01-02T03:04:05", "notes": ["a", 1.5]}
    snapshot.write_snapshot(str(path), nets, metadata)
    assert snapshot.is_snapshot(str(path))
    got, meta = snapshot.read_snapshot(str(path))
    assert meta == metadata
    assert list(got) == ["G", "D", "Gs"]
    for net, (cfg, variables) in nets.items():
        got_cfg, got_vars = got[net]
        assert got_cfg == cfg
        assert list(got_vars) == list(variables)  # order and "/" names preserved
        for name, arr in variables.items():
            out = got_vars[name]
            assert out.dtype == arr.dtype and out.shape == arr.shape, name
            assert out.tobytes() == np.ascontiguousarray(arr).tobytes(), name  # bitwise, NaN included
            assert out.flags.writeable
    assert got["G"][1]["synthesis/4x4/Conv/noise_strength"].ndim == 0
    with zipfile.ZipFile(path) as zf:
        assert json.loads(zf.read("meta.json"))["format"] == "ganformer-tf2-snapshot"
        assert not any(n.endswith(".pkl") or "pickle" in n for n in zf.namelist())


def test_write_is_atomic_and_rejects_object_arrays(tmp_path):
    path = tmp_path / "net.pkl"
    snapshot.write_snapshot(str(path), _nets(), {"kimg": 1})
    before = path.read_bytes()
    bad = {"G": ({}, {"w": np.array([{"x": 1}], dtype=object)})}
    with pytest.raises(ValueError, match="only numeric arrays"):
        snapshot.write_snapshot(str(path), bad, {})
    assert path.read_bytes() == before  # the old file is untouched
    assert os.listdir(tmp_path) == ["net.pkl"]  # no temp file left behind
    with pytest.raises(ValueError, match="identifiers"):
        snapshot.write_snapshot(str(tmp_path / "x.pkl"), {"G/../x": ({}, {})}, {})
    with pytest.raises(TypeError):
        snapshot.write_snapshot(str(tmp_path / "y.pkl"), {"G": ({"f": object()}, {})}, {})
    assert sorted(os.listdir(tmp_path)) == ["net.pkl"]


def test_corrupt_files(tmp_path):
    path = tmp_path / "net.pkl"
    snapshot.write_snapshot(str(path), _nets(), {})
    data = path.read_bytes()
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="corrupt"):
        snapshot.read_snapshot(str(truncated))
    # Flip one byte inside the first variable's array data: the zip CRC check must catch it.
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("G/variables/00000.npy")
    offset = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + 200
    flipped = bytearray(data)
    flipped[offset] ^= 0xFF
    bad = tmp_path / "flipped.pkl"
    bad.write_bytes(bytes(flipped))
    with pytest.raises(UserError, match="corrupt"):
        snapshot.read_snapshot(str(bad))
    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"hello, not a snapshot")
    with pytest.raises(UserError, match="not a zip archive"):
        snapshot.read_snapshot(str(garbage))
    assert not snapshot.is_snapshot(str(garbage))
    with pytest.raises(UserError, match="cannot open"):
        snapshot.read_snapshot(str(tmp_path / "missing.pkl"))


def _rewrite_meta(src, dst, **changes):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "meta.json":
                meta = json.loads(data)
                meta.update(changes)
                data = json.dumps(meta).encode()
            zout.writestr(item, data)


def test_wrong_format_or_version(tmp_path):
    path = tmp_path / "net.pkl"
    snapshot.write_snapshot(str(path), _nets(), {})
    newer = tmp_path / "newer.pkl"
    _rewrite_meta(path, newer, version=snapshot.FORMAT_VERSION + 1)
    with pytest.raises(UserError, match="newer than this code reads"):
        snapshot.read_snapshot(str(newer))
    other = tmp_path / "other.pkl"
    _rewrite_meta(path, other, format="someone-elses-format")
    with pytest.raises(UserError, match="unknown file format 'someone-elses-format'"):
        snapshot.read_snapshot(str(other))
    assert not snapshot.is_snapshot(str(other))
    zero = tmp_path / "zero.pkl"
    _rewrite_meta(path, zero, version=0)
    with pytest.raises(UserError, match="invalid format version"):
        snapshot.read_snapshot(str(zero))
    plain_zip = tmp_path / "plain.zip"
    with zipfile.ZipFile(plain_zip, "w") as zf:
        zf.writestr("hello.txt", "hi")
    with pytest.raises(UserError, match="missing 'meta.json'"):
        snapshot.read_snapshot(str(plain_zip))


def test_index_mismatch_and_missing_entry(tmp_path):
    path = tmp_path / "net.pkl"
    snapshot.write_snapshot(str(path), {"G": ({}, {"a/b": np.zeros((2, 2), np.float32)})}, {})
    mismatched = tmp_path / "mismatch.pkl"
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(mismatched, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "G/variables.json":
                index = json.loads(data)
                index[0]["shape"] = [4]
                data = json.dumps(index).encode()
            zout.writestr(item, data)
    with pytest.raises(UserError, match="'G/a/b' does not match its index entry"):
        snapshot.read_snapshot(str(mismatched))


def test_real_pickle_is_refused(tmp_path):
    with pytest.raises(UserError, match="this is a Python pickle, not a GANformer-TF2 snapshot"):
        snapshot.read_snapshot(FIXTURE_PKL)
    assert not snapshot.is_snapshot(FIXTURE_PKL)
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"x": 1}))
    with pytest.raises(UserError, match="Python pickle"):
        snapshot.read_snapshot(str(evil))
