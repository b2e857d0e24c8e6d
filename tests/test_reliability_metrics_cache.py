"""Damaged metric caches: a real-statistics `.npz` that is truncated, overwritten, incomplete, of other shapes or
not finite is discarded with a one-line note and computed again (the metric equals a clean run's); a cached network
file that does not match its published sha256 is discarded and fetched again; one without a checksum that cannot
be read is refused in one line naming it."""

import glob
import hashlib
import os

import numpy as np
import pytest
import tensorflow as tf

from dnnlib import download
from dnnlib.util import UserError
from metrics import context, inception, netfiles, registry
from tests.metrics_helpers import MemDataset, StandInNet, TinyG


@pytest.fixture
def net(monkeypatch):
    stand_in = StandInNet()
    monkeypatch.setattr(context, "load_inception", lambda path=None, cache_dir=None: stand_in)
    return stand_in


def _evaluate(tmp_path, names="fid"):
    """(values by metric, printed lines, dataset passes) of one evaluation with the cache in tmp_path/cache."""
    lines, ds = [], MemDataset()
    records = registry.evaluate(names, TinyG(), ds, num_images=20, run_dir=str(tmp_path / "run"),
                                snapshot_name="network-snapshot-000010", kimg=10.0, batch_size=8,
                                cache_dir=str(tmp_path / "cache"), print_fn=lines.append)
    return {r["metric"]: r["value"] for r in records}, lines, ds.reads


def _rewrite(path, **changes):
    """Rewrites the cached `.npz` with some arrays replaced (None: removed)."""
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    arrays.update(changes)
    with open(path, "wb") as f:
        np.savez(f, **{k: v for k, v in arrays.items() if v is not None})


def _with_nan(path, key):
    with np.load(path) as data:
        value = data[key].copy()
    value.flat[0] = np.nan
    return value


DAMAGE = {
    "truncated": lambda p, good: open(p, "wb").write(good[: len(good) // 2]),
    "empty": lambda p, good: open(p, "wb").write(b""),
    "garbage": lambda p, good: open(p, "wb").write(np.random.RandomState(0).bytes(len(good))),
    "garbage middle": lambda p, good: open(p, "wb").write(good[:200] + b"\xff" * 400 + good[600:]),
    "mean of other width": lambda p, good: _rewrite(p, mean=np.zeros(5)),
    "cov not square": lambda p, good: _rewrite(p, cov=np.zeros((12, 11))),
    "nan mean": lambda p, good: _rewrite(p, mean=_with_nan(p, "mean")),
    "inf cov": lambda p, good: _rewrite(p, cov=np.full((12, 12), np.inf)),
    "cov missing": lambda p, good: _rewrite(p, cov=None),
    "count too small": lambda p, good: _rewrite(p, num_items=np.int64(1)),
    "count too large": lambda p, good: _rewrite(p, num_items=np.int64(10 ** 6)),
    "pickled object": lambda p, good: _rewrite(p, mean=np.array([{"a": 1}], dtype=object)),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_real_statistics_cache_is_discarded_and_recomputed(tmp_path, net, damage):
    clean, _, _ = _evaluate(tmp_path)
    (path,) = glob.glob(str(tmp_path / "cache" / "metrics" / "*.npz"))
    with open(path, "rb") as f:
        good = f.read()
    DAMAGE[damage](path, good)
    values, lines, reads = _evaluate(tmp_path)
    notes = [line for line in lines if "damaged" in line]
    assert len(notes) == 1 and notes[0].startswith(f"metrics cache {path}: damaged (") and "\n" not in notes[0]
    assert reads == 1  # the reals were read again
    assert values["fid"] == clean["fid"]
    values, lines, reads = _evaluate(tmp_path)  # the recomputed statistics were cached again, intact
    assert reads == 0 and values["fid"] == clean["fid"] and not any("damaged" in line for line in lines)


def test_damaged_captured_rows_are_recomputed_for_fid_and_kid(tmp_path, net):
    clean, _, _ = _evaluate(tmp_path, "fid,kid")
    (path,) = glob.glob(str(tmp_path / "cache" / "metrics" / "*.npz"))
    _rewrite(path, features=_with_nan(path, "features"))
    values, lines, reads = _evaluate(tmp_path, "fid,kid")
    assert reads == 1 and sum("damaged (values are not finite numbers)" in line for line in lines) == 1
    assert values == clean
    _rewrite(path, features=None)  # the rows KID needs are gone
    values, lines, reads = _evaluate(tmp_path, "fid,kid")
    assert reads == 1 and sum("damaged (incomplete: holds" in line for line in lines) == 1 and values == clean


class StandInVGG:
    """Cheap stand-in for VGG16's fc7: 4096-d features from per-channel means."""

    def features(self, images):
        x = tf.reduce_mean(tf.cast(images, tf.float32), axis=[1, 2])  # [B, 3]
        return tf.tile(x, [1, 4096 // 4 + 1])[:, :4096]


@pytest.mark.parametrize("damage", ["truncated", "rows of other width", "nan rows"])
def test_a_damaged_vgg_feature_cache_is_discarded_and_recomputed(tmp_path, monkeypatch, damage):
    monkeypatch.setattr(context, "load_vgg16", lambda path=None, cache_dir=None: (StandInVGG(), "/none", "0" * 64))
    ctx = context.EvalContext(TinyG(), MemDataset(), batch_size=8, cache_dir=str(tmp_path))
    clean = ctx.real_vgg(20)
    (path,) = glob.glob(str(tmp_path / "metrics" / "*vgg16*.npz"))
    if damage == "truncated":
        with open(path, "rb") as f:
            good = f.read()
        DAMAGE["truncated"](path, good)
    else:
        _rewrite(path, features=clean[:, :7] if damage == "rows of other width" else _with_nan(path, "features"))
    lines = []
    ctx = context.EvalContext(TinyG(), MemDataset(), batch_size=8, cache_dir=str(tmp_path), print_fn=lines.append)
    np.testing.assert_array_equal(ctx.real_vgg(20), clean)
    assert len(lines) == 1 and lines[0].startswith(f"metrics cache {path}: damaged (")
    assert ctx.dataset.reads == 1


def test_a_cached_network_file_that_fails_its_checksum_is_discarded_and_downloaded_again(tmp_path, monkeypatch,
                                                                                         capsys):
    good = b"the network weights"
    downloads = (netfiles.Download("https://example.invalid/net.pt", hashlib.sha256(good).hexdigest(), "net.pt"),)
    cached = download.cache_path_for(downloads[0].url, str(tmp_path))
    with open(cached, "wb") as f:
        f.write(good[:7])  # a torn download left in the cache
    fetched = []

    def fetch(url, cache_dir=None, sha256=None, return_path=False, **kwargs):
        fetched.append(url)
        with open(cached, "wb") as f:
            f.write(good)
        return cached

    monkeypatch.setattr(download, "open_url", fetch)
    found = netfiles.resolve("Test net", downloads, cache_dir=str(tmp_path))
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [f"{cached}: cached file does not match its published sha256 (damaged); discarded"]
    assert fetched == [downloads[0].url] and found.path == cached and open(cached, "rb").read() == good
    found = netfiles.resolve("Test net", downloads, cache_dir=str(tmp_path))  # intact now: used as it is
    assert found.origin == "cache" and fetched == [downloads[0].url] and not capsys.readouterr().out


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 torn zip", b"\x80\x02garbage" * 100])
def test_a_damaged_cached_inception_without_a_checksum_is_one_line_naming_it(tmp_path, monkeypatch, content):
    path = tmp_path / "inception-2015-12-05.pt"
    path.write_bytes(content)
    monkeypatch.setattr(netfiles, "package_file", lambda *a, **k: None)
    with pytest.raises(UserError) as info:
        inception.load_inception(cache_dir=str(tmp_path))
    assert "\n" not in str(info.value) and str(path) in str(info.value)
