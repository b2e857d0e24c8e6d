"""VGG16 module (synthetic weights vs a NumPy NCHW oracle), precision/recall and PPL plumbing, PPL math."""

import collections

import numpy as np
import pytest
import tensorflow as tf

from dnnlib import download
from dnnlib.files import file_sha256
from dnnlib.util import UserError
from metrics import images, netfiles, ppl, precision_recall, registry, vgg16
from tests.metrics_helpers import MemDataset, TinyG, synthetic_tensors, write_pt

@pytest.fixture(scope="module")
def tensors():
    return synthetic_tensors()


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory, tensors):
    path = tmp_path_factory.mktemp("vgg") / "vgg16.pt"
    write_pt(path, dict(tensors))
    return str(path)


@pytest.fixture(scope="module")
def vgg(vgg_file):
    return vgg16.load_vgg16(vgg_file)[0]


def _oracle_taps(tensors, img):
    """NCHW NumPy VGG16 conv stack on one `[H, W, 3]` image in [0, 255]; returns the five taps `[C, h, w]`."""
    x = ((img / 255.0 - vgg16.IMAGENET_MEAN) / vgg16.IMAGENET_STD).transpose(2, 0, 1).astype(np.float64)
    taps = []
    for i in range(13):
        w, b = tensors[f"layers.conv{i}.weight"], tensors[f"layers.conv{i}.bias"]
        xp = np.pad(x, [(0, 0), (1, 1), (1, 1)])
        h, wd = x.shape[1:]
        y = sum(np.einsum("oi,ihw->ohw", w[:, :, dy, dx], xp[:, dy:dy + h, dx:dx + wd])
                for dy in range(3) for dx in range(3))
        x = np.maximum(y + b[:, None, None], 0)
        if i in vgg16.POOL_AFTER:
            taps.append(x)
            c, h, wd = x.shape
            x = x.reshape(c, h // 2, 2, wd // 2, 2).max(axis=(2, 4))
    return taps, x


def _oracle_lpips(tensors, a, b):
    ta, _ = _oracle_taps(tensors, a)
    tb, _ = _oracle_taps(tensors, b)
    total = 0.0
    for j, (fa, fb) in enumerate(zip(ta, tb)):
        na = fa / (np.sqrt((fa ** 2).sum(0, keepdims=True)) + 1e-10)
        nb = fb / (np.sqrt((fb ** 2).sum(0, keepdims=True)) + 1e-10)
        w = tensors[f"lpips.lin{j}.weight"].reshape(-1, 1, 1)
        total += (w * (na - nb) ** 2).sum(0).mean()
    return total


@pytest.fixture(scope="module")
def imgs():
    return np.random.RandomState(2).randint(0, 256, [2, 32, 32, 3]).astype(np.float32)


def test_conv_stack_matches_numpy_oracle(vgg, tensors, imgs):
    _, taps = vgg.conv_stack(vgg.normalize(tf.constant(imgs)))
    want, _ = _oracle_taps(tensors, imgs[0])
    for got, ref in zip(taps, want):
        np.testing.assert_allclose(got.numpy()[0].transpose(2, 0, 1), ref, rtol=1e-3, atol=1e-4)


def test_lpips_matches_numpy_oracle(vgg, tensors, imgs):
    got = vgg.lpips(tf.constant(imgs[:1]), tf.constant(imgs[1:])).numpy()[0]
    assert got == pytest.approx(_oracle_lpips(tensors, imgs[0], imgs[1]), rel=1e-4)
    assert vgg.lpips(tf.constant(imgs), tf.constant(imgs)).numpy() == pytest.approx([0.0, 0.0], abs=1e-10)


def test_fc_features_use_torch_flatten_order(vgg, tensors):
    x = np.random.RandomState(3).randint(0, 256, [1, 224, 224, 3]).astype(np.float32)
    pooled, _ = vgg.conv_stack(vgg.normalize(tf.constant(x)))
    flat = pooled.numpy()[0].transpose(2, 0, 1).reshape(-1)  # torch flattens C, H, W
    h = np.maximum(tensors["layers.fc6.weight"] @ flat + tensors["layers.fc6.bias"], 0)
    want = np.maximum(tensors["layers.fc7.weight"] @ h + tensors["layers.fc7.bias"], 0)
    np.testing.assert_allclose(vgg.features(tf.constant(x)).numpy()[0], want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("n_in,n_out", [(10, 4), (5, 7), (6, 6)])
def test_area_resize_is_adaptive_average_pooling(n_in, n_out):
    x = np.random.RandomState(4).rand(1, n_in, n_in, 2).astype(np.float32)
    want = np.zeros([1, n_out, n_out, 2])
    for i in range(n_out):
        for j in range(n_out):
            r0, r1 = i * n_in // n_out, -(-(i + 1) * n_in // n_out)
            c0, c1 = j * n_in // n_out, -(-(j + 1) * n_in // n_out)
            want[0, i, j] = x[0, r0:r1, c0:c1].mean((0, 1))
    np.testing.assert_allclose(vgg16.area_resize(tf.constant(x), n_out, n_out).numpy(), want, rtol=1e-5)


def test_wrong_or_partial_weights_are_user_errors(tmp_path, tensors):
    bad = collections.OrderedDict(tensors)
    bad["layers.conv0.weight"] = np.zeros([32, 3, 3, 3], np.float32)
    with pytest.raises(UserError, match="not VGG16"):
        vgg16.params_from_tensors(bad)
    partial = vgg16.VGG16(vgg16.params_from_tensors(synthetic_tensors(with_fc=False, with_lins=False)))
    with pytest.raises(UserError, match="--vgg16 PATH"):
        partial.lpips(tf.zeros([1, 8, 8, 3]), tf.zeros([1, 8, 8, 3]))
    with pytest.raises(UserError, match="--vgg16 PATH"):
        partial.features(tf.zeros([1, 8, 8, 3]))


def test_vgg16_offline_without_file_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(download, "open_url", lambda url, **kw: (_ for _ in ()).throw(UserError(f"{url}: offline")))
    with pytest.raises(UserError) as info:
        vgg16.load_vgg16(cache_dir=str(tmp_path))
    msg = str(info.value)
    assert "\n" not in msg and "--vgg16 PATH" in msg and netfiles.VGG16_DOWNLOADS[0].url in msg


def test_precision_recall_through_registry_matches_direct(tmp_path, vgg_file, vgg):
    ds = MemDataset(n=6)
    rec = registry.evaluate("pr", TinyG(), ds, 6, str(tmp_path / "run"), "snap", 0, batch_size=3,
                            vgg16_path=vgg_file, cache_dir=str(tmp_path / "cache"))[0]
    fakes = np.concatenate(list(images.generate_fakes(TinyG(), 6, 3)))
    (cached,) = (tmp_path / "cache" / "metrics").glob("*-vgg16-*.npz")
    real_f = np.load(cached)["features"]
    np.testing.assert_allclose(real_f[:2], vgg.features(tf.constant(ds.images[:2])).numpy(), rtol=1e-4, atol=1e-5)
    fake_f = vgg.features(tf.constant(fakes)).numpy()
    p, r = precision_recall.precision_recall(real_f, fake_f, k=3)
    assert rec["results"]["precision"] == pytest.approx(p) and rec["results"]["recall"] == pytest.approx(r)
    assert rec["feature_network_sha256"] == file_sha256(vgg_file)


def test_slerp_properties():
    rng = np.random.RandomState(5)
    a, b = rng.randn(3, 2, 6), rng.randn(3, 2, 6)
    na = a / np.linalg.norm(a, axis=-1, keepdims=True)
    nb = b / np.linalg.norm(b, axis=-1, keepdims=True)
    np.testing.assert_allclose(ppl.slerp(a, b, 0.0).numpy(), na, atol=1e-12)
    np.testing.assert_allclose(ppl.slerp(a, b, 1.0).numpy(), nb, atol=1e-9)
    mid = ppl.slerp(a, b, 0.3).numpy()
    np.testing.assert_allclose(np.linalg.norm(mid, axis=-1), 1.0, atol=1e-12)
    full = np.arccos((na * nb).sum(-1))
    np.testing.assert_allclose(np.arccos(np.clip((mid * na).sum(-1), -1, 1)), 0.3 * full, atol=1e-7)


def test_filtered_mean_matches_percentile_oracle():
    d = np.random.RandomState(6).lognormal(size=1000)
    lo, hi = np.percentile(d, 1, method="lower"), np.percentile(d, 99, method="higher")
    assert ppl.filtered_mean(d) == pytest.approx(d[(d >= lo) & (d <= hi)].mean(), rel=1e-12)
    assert ppl.filtered_mean(d) < d.mean()


class LinearG(TinyG):
    """Linear synthesis (no tanh): PPL with a squared-distance 'LPIPS' then has a closed form."""

    def synthesis(self, ws, noise_mode="const"):
        flat = tf.reshape(tf.reduce_mean(ws, axis=2), [-1, 8])
        return tf.reshape(flat @ self.proj * 0.01, [-1, 16, 16, 3])


def _sq_dist(a, b):
    return tf.reduce_sum(tf.square(a - b), axis=[1, 2, 3])


@pytest.mark.parametrize("space", ["w", "z"])
def test_end_point_ppl_matches_closed_form_for_linear_generator(space):
    g = LinearG()
    value = ppl.compute_ppl(g, _sq_dist, 40, space=space, sampling="end", batch_size=8, seed=7)
    rng = np.random.RandomState(7)
    proj = g.proj.numpy().astype(np.float64) * 0.01 * 127.5
    dists = []
    for _ in range(5):
        z = rng.standard_normal([16, 2, 4]).astype(np.float32).astype(np.float64)
        rng.random_sample(0)  # the PPL loop draws no t for "end" sampling and no labels here
        z0, z1 = z[:8], z[8:]
        if space == "w":
            direction = (z1 - z0).reshape(8, 8)  # d/dt lerp
        else:  # d/dt slerp at t = 0: angle * unit tangent
            a = z0 / np.linalg.norm(z0, axis=-1, keepdims=True)
            b = z1 / np.linalg.norm(z1, axis=-1, keepdims=True)
            d = (a * b).sum(-1, keepdims=True)
            c = b - d * a
            direction = (np.arccos(d) * c / np.linalg.norm(c, axis=-1, keepdims=True)).reshape(8, 8)
        dists.append(np.square(direction @ proj).sum(1))
    assert value == pytest.approx(ppl.filtered_mean(np.concatenate(dists)), rel=2e-2)


@pytest.mark.parametrize("name,crop", [("ppl_zfull", True), ("ppl_wfull", True), ("ppl_zend", True),
                                       ("ppl_wend", True), ("ppl2_wend", False), ("ppl", False)])
def test_ppl_names_mean_what_they_mean_in_stylegan2(name, crop):
    """StyleGAN2's `ppl_*` metrics are face-cropped; its uncropped variant is `ppl2_wend`."""
    metric = registry.get_metric(name)
    assert metric.options == {"crop": crop} and metric.num_images == (None if name == "ppl" else 50000)


def test_ppl_through_registry_records_a_value(tmp_path, vgg_file):
    rec = registry.evaluate("ppl", TinyG(), MemDataset(), 8, str(tmp_path), "snap", 0, batch_size=4,
                            vgg16_path=vgg_file, cache_dir=str(tmp_path / "c"))
    assert rec[0]["metric"] == "ppl" and rec[0]["results"]["space"] == "w" and np.isfinite(rec[0]["value"]) and rec[0]["value"] > 0
