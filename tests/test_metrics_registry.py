"""`metrics.registry.evaluate` with a tiny stand-in generator, an in-memory dataset and a cheap stand-in feature
network (the real Inception is covered by test_metrics_fid_reference.py; here the plumbing is under test)."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from dnnlib.util import UserError
from metrics import context, fid, images, inception_score, kid, registry


class TinyG:
    """Stand-in generator with the documented API: latents [B, K, d] -> images [B, R, R, 3] in [-1, 1]."""

    latent_shape = (2, 4)
    resolution = 16
    label_dim = 0

    def __init__(self):
        rng = np.random.RandomState(0)
        self.proj = tf.constant(rng.randn(8, 16 * 16 * 3).astype(np.float32) * 0.7)
        self.calls = 0

    def mapping(self, z, labels=None):
        return tf.tile(tf.cast(z, tf.float32)[:, :, None, :], [1, 1, 3, 1])  # ws [B, K, L=3, d]

    def synthesis(self, ws, noise_mode="const"):
        flat = tf.reshape(tf.reduce_mean(ws, axis=2), [-1, 8])
        return tf.reshape(tf.tanh(flat @ self.proj), [-1, 16, 16, 3])

    def __call__(self, z, labels=None, truncation_psi=1.0, noise_mode="const", return_maps=False):
        self.calls += 1
        return self.synthesis(self.mapping(z, labels), noise_mode=noise_mode)


class MemDataset:
    """In-memory stand-in for training.data.loader.Dataset."""

    def __init__(self, n=30, ratio=1.0):
        self.images = np.random.RandomState(1).randint(0, 256, [n, 16, 16, 3]).astype(np.uint8)
        self.name, self.path, self.resolution, self.ratio, self.label_dim = "mem", "/mem/ds", 16, ratio, 0
        self.num_images = n
        self.reads = 0

    def tf_dataset(self, batch_size, shuffle=True, repeat=True, seed=0):
        self.reads += 1
        return tf.data.Dataset.from_tensor_slices(self.images).batch(batch_size)


class StandInNet:
    """Cheap feature network: per-channel mean/std/min/max (12-d) and softmax 'class probabilities'."""

    name, path, sha256, preprocessing = "stand-in", "/none", "0" * 64, "stand-in"

    def __init__(self, has_logits=True):
        self.has_logits = has_logits
        self.shapes = []

    def features(self, batch, resize="legacy"):
        self.shapes.append(batch.shape)
        x = batch.astype(np.float32) / 255.0
        return np.concatenate([x.mean((1, 2)), x.std((1, 2)), x.min((1, 2)), x.max((1, 2))], axis=1)

    def features_and_probs(self, batch):
        f = self.features(batch)
        logits = f @ np.linspace(-3, 3, 12 * 5).reshape(12, 5)
        return f, np.asarray(tf.nn.softmax(logits))


@pytest.fixture
def net(monkeypatch):
    stand_in = StandInNet()
    monkeypatch.setattr(context, "load_inception", lambda path=None, cache_dir=None: stand_in)
    return stand_in


def _run(names, tmp_path, gen=None, ds=None, **kw):
    return registry.evaluate(names, gen or TinyG(), ds or MemDataset(), num_images=kw.pop("num_images", 20),
                             run_dir=str(tmp_path / "run"), snapshot_name="network-snapshot-000010", kimg=10.0,
                             batch_size=8, cache_dir=str(tmp_path / "cache"), **kw)


def test_fid_kid_is_share_one_fake_pass_and_match_direct_math(tmp_path, net):
    gen, ds = TinyG(), MemDataset()
    records = {r["metric"]: r for r in _run("fid,kid,is", tmp_path, gen, ds)}
    assert gen.calls == 3  # 20 fakes in batches of 8, generated once for all three metrics
    assert ds.reads == 1  # FID and KID share one real pass (rows kept for KID)
    fakes = np.concatenate(list(images.generate_fakes(TinyG(), 20, 8, seed=0)))
    reals = ds.images[:20]
    ff, pf = net.features_and_probs(fakes)
    fr = net.features(reals)
    want_fid = fid.fid_from_stats(fr.mean(0), np.cov(fr, rowvar=False), ff.mean(0), np.cov(ff, rowvar=False))
    assert records["fid"]["value"] == pytest.approx(want_fid, rel=1e-5)  # singular 12-d covariances
    assert records["kid"]["value"] == pytest.approx(kid.kid_from_features(fr, ff), rel=1e-8)
    assert records["is"]["value"] == pytest.approx(inception_score.inception_score(pf)[0], rel=1e-8)
    assert records["fid"]["num_images"] == 20 and records["fid"]["results"]["num_reals"] == 20


def test_results_are_appended_as_jsonl_with_provenance(tmp_path, net):
    _run("fid", tmp_path)
    _run("fid", tmp_path)
    lines = (tmp_path / "run" / "metric-fid.jsonl").read_text().splitlines()
    assert len(lines) == 2
    rec = json.loads(lines[1])
    for key in ("snapshot", "kimg", "value", "num_images", "feature_network", "feature_network_sha256",
                "preprocessing", "seconds"):
        assert key in rec
    assert rec["snapshot"] == "network-snapshot-000010" and rec["feature_network"] == "stand-in"


def test_real_statistics_are_cached_on_disk(tmp_path, net):
    ds = MemDataset()
    first = _run("fid", tmp_path, ds=ds)[0]["value"]
    assert ds.reads == 1
    second = _run("fid", tmp_path, ds=ds)[0]["value"]
    assert ds.reads == 1 and second == pytest.approx(first, rel=1e-12)
    _run("fid", tmp_path, ds=ds, mirror=True)  # other settings -> other cache entry
    assert ds.reads == 2
    assert len(list((tmp_path / "cache" / "metrics").glob("*.npz"))) == 2


def test_reals_and_fakes_are_cropped_to_the_content_ratio(tmp_path, net):
    _run("fid", tmp_path, ds=MemDataset(ratio=0.5), ratio=0.5)
    assert {s[1:] for s in net.shapes} == {(9, 16, 3)}  # rows floor(0.25*16)=4 .. ceil(0.75*16)=12 inclusive


class CroppingG(TinyG):
    """A generator with `crop_ratio` 0.5: it returns only the 8 content rows of its 16x16 frame."""

    cfg = type("Cfg", (), {"crop_ratio": 0.5})()

    def __call__(self, z, labels=None, truncation_psi=1.0, noise_mode="const", return_maps=False):
        return super().__call__(z, labels, truncation_psi, noise_mode)[:, 4:12]


def test_images_a_generator_cropped_are_not_cropped_again(tmp_path, net):
    """Fakes of a cropping G and the reals are compared at the same rows (G's), not re-cropped fakes vs reals."""
    registry.evaluate("fid", CroppingG(), MemDataset(ratio=0.5), 16, str(tmp_path), "snap", 0, batch_size=8,
                      cache_dir=str(tmp_path / "cache"), ratio=0.5)
    assert {s[1:] for s in net.shapes} == {(8, 16, 3)}


def test_mirroring_flips_about_half_of_the_reals():
    ds = MemDataset(n=200)
    out = np.concatenate(list(images.iterate_reals(ds, 200, 50, mirror=True)))
    flipped = np.all(out == ds.images[:, :, ::-1], axis=(1, 2, 3))
    same = np.all(out == ds.images, axis=(1, 2, 3))
    assert np.all(flipped | same) and 70 < flipped.sum() < 130


def test_quantization_rounds_and_saturates():
    x = tf.constant([[-2.0, -1.0, 0.0, 0.003, 1.0, 3.0]])
    assert images.quantize(x).numpy().tolist() == [[0, 0, 128, 128, 255, 255]]  # 127.5 rounds half to even


def test_is_with_pool3_only_network_is_skipped_with_one_line(tmp_path, monkeypatch):
    stand_in = StandInNet(has_logits=False)
    monkeypatch.setattr(context, "load_inception", lambda path=None, cache_dir=None: stand_in)
    with pytest.raises(UserError, match="needs the full inception-2015-12-05") as info:
        _run("is", tmp_path)
    assert "--inception PATH" in str(info.value) and "\n" not in str(info.value)
    printed = []
    records = _run(["fid", "is"], tmp_path, print_fn=printed.append)
    assert [r["metric"] for r in records] == ["fid"]
    assert any(p.startswith("is: skipped:") for p in printed)


def test_unknown_metric_and_missing_count_are_user_errors(tmp_path, net):
    with pytest.raises(UserError, match="unknown metric 'fidd'"):
        _run("fidd", tmp_path)
    with pytest.raises(UserError, match="--eval-images-num"):
        _run("fid", tmp_path, num_images=None)


def test_tensorboard_scalars_are_written(tmp_path, net):
    writer = tf.summary.create_file_writer(str(tmp_path / "tb"))
    _run("fid", tmp_path, tb_writer=writer)
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))


_STRATEGY_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    sys.path[:0] = [sys.argv[1], sys.argv[2]]
    from test_metrics_registry import TinyG
    from metrics import images
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
        g = TinyG()
    seen = []
    orig = g.synthesis
    def synthesis(ws, noise_mode="const"):
        seen.append(tf.distribute.get_replica_context().replica_id_in_sync_group)
        return orig(ws, noise_mode)
    g.synthesis = synthesis
    dist = np.concatenate(list(images.generate_fakes(g, 20, 4, seed=3, strategy=strategy)))
    plain = np.concatenate(list(images.generate_fakes(TinyG(), 20, 8, seed=3)))
    assert dist.shape == (20, 16, 16, 3), dist.shape
    assert np.array_equal(dist, plain)
    assert len(seen) >= 2, seen
    from metrics import ppl
    sq = lambda a, b: tf.reduce_sum(tf.square(a - b), axis=[1, 2, 3])
    v_dist = ppl.compute_ppl(TinyG(), sq, 16, space="z", batch_size=4, seed=1, strategy=strategy)
    v_plain = ppl.compute_ppl(TinyG(), sq, 16, space="z", batch_size=8, seed=1)
    assert abs(v_dist - v_plain) <= 1e-4 * abs(v_plain), (v_dist, v_plain)
    print("OK")
""")


def test_generation_and_ppl_run_on_all_replicas_of_a_strategy():
    root = Path(__file__).resolve().parent
    out = subprocess.run([sys.executable, "-c", _STRATEGY_SCRIPT, str(root), str(root.parent)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("OK"), out.stderr[-3000:]
