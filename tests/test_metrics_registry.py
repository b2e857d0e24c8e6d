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
from tests.metrics_helpers import MemDataset, StandInNet, TinyG
from tests.train_helpers import read_scalars


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
    """The event file holds each metric's value and its float side results (IS's std) at step kimg * 1000 (images
    seen), one point per evaluation, equal to the recorded values."""
    writer = tf.summary.create_file_writer(str(tmp_path / "tb"))
    records = {}
    for kimg, seed in ((10.0, 1), (20.5, 2)):  # another seed each time: other fakes, other values
        for rec in registry.evaluate("fid,is", TinyG(), MemDataset(), 20, str(tmp_path / "run"), f"snap-{seed}",
                                     kimg, batch_size=8, cache_dir=str(tmp_path / "cache"), tb_writer=writer,
                                     seed=seed):
            records.setdefault(rec["metric"], []).append(rec)
    scalars = read_scalars(str(tmp_path / "tb"))
    assert sorted(scalars) == ["Metrics/fid", "Metrics/is", "Metrics/is/std"]
    fids, iss = records["fid"], records["is"]
    assert fids[0]["value"] != fids[1]["value"] and iss[0]["value"] != iss[1]["value"]
    for tag, want in (("Metrics/fid", [r["value"] for r in fids]), ("Metrics/is", [r["value"] for r in iss]),
                      ("Metrics/is/std", [r["results"]["std"] for r in iss])):
        assert [step for step, _ in scalars[tag]] == [10000, 20500], tag
        assert [value for _, value in scalars[tag]] == pytest.approx(want, rel=1e-6), tag  # stored as float32
    assert all(v > 0 for _, v in scalars["Metrics/fid"]) and all(v >= 1 for _, v in scalars["Metrics/is"])


def test_generation_under_the_default_strategy_is_a_plain_one():
    """`run_network.py --eval` in one process passes TensorFlow's default strategy: one replica, the same fakes."""
    strategy = tf.distribute.get_strategy()
    assert images.num_replicas(strategy) == 1
    dist = np.concatenate(list(images.generate_fakes(TinyG(), 20, 8, seed=3, strategy=strategy)))
    plain = np.concatenate(list(images.generate_fakes(TinyG(), 20, 8, seed=3)))
    assert dist.shape == (20, 16, 16, 3) and np.array_equal(dist, plain)


_STRATEGY_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    sys.path.insert(0, sys.argv[1])
    from tests.metrics_helpers import TinyG
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
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", _STRATEGY_SCRIPT, str(root)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("OK"), out.stderr[-3000:]
