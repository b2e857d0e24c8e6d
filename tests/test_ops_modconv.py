"""Modulated convolution and minibatch stddev against NumPy oracles; the non-fused library form against a fused
(grouped-conv, per-sample weights) TF form written here."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from dnnlib.tflib.ops import modconv
from dnnlib.tflib.ops.upfirdn_2d import setup_kernel, upfirdn_2d
from ops_oracle import (np_conv2d_same, np_conv_downsample_2d, np_minibatch_stddev, np_modulated_conv_2d,
                        np_upsample_conv_2d)

MODES = {"same": (False, False), "up": (True, False), "down": (False, True)}
# (kernel size, C_in, C_out)
WSHAPES = [(3, 3, 5), (1, 5, 3), (3, 2, 1)]


def fused_modulated_conv_2d(x: tf.Tensor, w: tf.Tensor, s: tf.Tensor, demodulate: bool = True, up: bool = False,
                            down: bool = False) -> tf.Tensor:
    """StyleGAN2's fused form: per-sample modulated weights and ONE grouped conv over the batch folded into channels.

    Args:
        x: `[B, H, W, C_in]`; w: `[k, k, C_in, C_out]`; s: `[B, C_in]`.

    Returns:
        `[B, H', W', C_out]`.
    """
    b, h, wd, cin = x.shape
    kh, kw, _, cout = w.shape
    ww = w[None] * s[:, None, None, :, None]  # [B, k, k, C_in, C_out]
    if demodulate:
        ww = ww * tf.math.rsqrt(tf.reduce_sum(tf.square(ww), axis=[1, 2, 3], keepdims=True) + 1e-8)
    xg = tf.reshape(tf.transpose(x, [1, 2, 0, 3]), [1, h, wd, b * cin])  # channel = b * C_in + i
    fir = setup_kernel([1, 3, 3, 1])
    wg = tf.reshape(tf.transpose(ww, [1, 2, 3, 0, 4]), [kh, kw, cin, b * cout])  # out channel = b * C_out + o
    if up:
        # The stride-2 transposed conv with flipped weights equals zero insertion (x at even positions, k - 1 zeros
        # of padding each side) followed by a plain valid correlation with w; CPU TF has no grouped transposed conv.
        z = upfirdn_2d(xg, np.ones([1, 1]), up=2, pad0=kw - 1, pad1=kw - 2)
        y = tf.nn.conv2d(z, wg, strides=1, padding="VALID")
        p = 2 - (kw - 1)
        y = upfirdn_2d(y, fir * 4, pad0=(p + 1) // 2 + 1, pad1=p // 2 + 1)
    elif down:
        p = 2 + (kw - 1)
        y = tf.nn.conv2d(upfirdn_2d(xg, fir, pad0=(p + 1) // 2, pad1=p // 2), wg, strides=2, padding="VALID")
    else:
        y = tf.nn.conv2d(xg, wg, strides=1, padding="SAME")
    return tf.transpose(tf.reshape(y, [y.shape[1], y.shape[2], b, cout]), [2, 0, 1, 3])


def _inputs(wshape, mode, seed=0, batch=2):
    k, cin, cout = wshape
    rng = np.random.default_rng(seed)
    size = 6 if mode == "down" else 4
    x = rng.standard_normal((batch, size, size + 2 * (mode == "down"), cin))
    w = rng.standard_normal((k, k, cin, cout))
    s = rng.standard_normal((batch, cin)) * 0.5 + 1.0
    return x, w, s


def _close(got, want, tol=1e-12):
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got, want, rtol=0, atol=tol * max(1.0, np.abs(want).max()))


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("wshape", WSHAPES, ids=lambda s: "k{}_{}to{}".format(*s))
@pytest.mark.parametrize("demodulate", [True, False])
def test_modulated_conv_matches_per_sample_oracle_and_fused_form(mode, wshape, demodulate):
    up, down = MODES[mode]
    x, w, s = _inputs(wshape, mode)
    tx, tw, ts = tf.constant(x), tf.constant(w), tf.constant(s)
    got = modconv.modulated_conv_2d(tx, tw, ts, demodulate=demodulate, up=up, down=down)
    assert got.dtype == tf.float64
    want = np_modulated_conv_2d(x, w, s, demodulate=demodulate, up=up, down=down)
    _close(got.numpy(), want)
    fused = fused_modulated_conv_2d(tx, tw, ts, demodulate=demodulate, up=up, down=down)
    _close(fused.numpy(), got.numpy())


@pytest.mark.parametrize("mode", sorted(MODES))
def test_fused_form_compiled_by_xla_matches_eager_library(mode):
    up, down = MODES[mode]
    x, w, s = (tf.constant(a.astype(np.float32)) for a in _inputs((3, 3, 5), mode, seed=4))
    fused = tf.function(lambda a, b, c: fused_modulated_conv_2d(a, b, c, up=up, down=down), jit_compile=True)
    got = fused(x, w, s).numpy()
    want = modconv.modulated_conv_2d(x, w, s, up=up, down=down).numpy()
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


@pytest.mark.parametrize("mode", sorted(MODES))
def test_no_style_is_a_plain_conv_without_demodulation(mode):
    up, down = MODES[mode]
    x, w, _ = _inputs((3, 3, 2), mode, seed=1)
    got = modconv.modulated_conv_2d(tf.constant(x), tf.constant(w), None, demodulate=True, up=up, down=down)
    want = {"same": np_conv2d_same, "up": np_upsample_conv_2d, "down": np_conv_downsample_2d}[mode](x, w)
    _close(got.numpy(), want)


def test_demodulation_coefficients_by_definition():
    _, w, s = _inputs((3, 3, 4), "same", seed=2)
    got = modconv.demodulation_coefficients(tf.constant(w), tf.constant(s)).numpy()
    want = np.stack([1.0 / np.sqrt(((w * s[b][None, None, :, None]) ** 2).sum(axis=(0, 1, 2)) + 1e-8)
                     for b in range(s.shape[0])])
    _close(got, want)
    assert got.shape == (2, 4)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_demodulated_output_ignores_style_and_weight_scale(mode):
    up, down = MODES[mode]
    x, w, s = _inputs((3, 3, 4), mode, seed=3)
    tx, tw, ts = tf.constant(x), tf.constant(w), tf.constant(s)
    ref = modconv.modulated_conv_2d(tx, tw, ts, up=up, down=down).numpy()
    scaled = modconv.modulated_conv_2d(tx, tw * 3.0, ts * tf.constant([[0.5], [7.0]], tf.float64), up=up, down=down)
    _close(scaled.numpy(), ref, tol=1e-9)
    plain = modconv.modulated_conv_2d(tx, tw * 3.0, ts, demodulate=False, up=up, down=down).numpy()
    assert np.abs(plain - ref).max() > 0.1


# ---------------------------------------------------------------------------------------------------------------
# minibatch stddev


@pytest.mark.parametrize("n", [8, 2, 3, 4])
@pytest.mark.parametrize("num_channels", [1, 2])
def test_minibatch_stddev_matches_oracle(n, num_channels):
    x = np.random.default_rng(n + 10 * num_channels).standard_normal((n, 3, 4, 4))
    got = modconv.minibatch_stddev(tf.constant(x), group_size=4, num_channels=num_channels)
    assert got.dtype == tf.float64 and got.shape == (n, 3, 4, 4 + num_channels)
    _close(got.numpy(), np_minibatch_stddev(x, 4, num_channels))


def test_minibatch_stddev_group_size_2():
    x = np.random.default_rng(5).standard_normal((4, 2, 2, 3))
    _close(modconv.minibatch_stddev(tf.constant(x), group_size=2).numpy(), np_minibatch_stddev(x, 2, 1))


def test_minibatch_stddev_groups_are_strided_not_contiguous():
    # Samples 0..3 identical, 4..7 different: contiguous groups would give std 0 for samples 0..3.
    rng = np.random.default_rng(6)
    x = np.concatenate([np.repeat(rng.standard_normal((1, 2, 2, 3)), 4, axis=0),
                        rng.standard_normal((4, 2, 2, 3)) * 3.0])
    stat = modconv.minibatch_stddev(tf.constant(x), group_size=4).numpy()[:, 0, 0, -1]
    assert stat.min() > 0.5
    np.testing.assert_allclose(stat[[0, 2, 4, 6]], stat[0], rtol=1e-14)  # group of i is i mod (N/G) = i mod 2
    np.testing.assert_allclose(stat[[1, 3, 5, 7]], stat[1], rtol=1e-14)
    assert abs(stat[0] - stat[1]) > 1e-3
    extra = modconv.minibatch_stddev(tf.constant(x), group_size=4).numpy()[..., -1]
    np.testing.assert_array_equal(extra, np.broadcast_to(stat[:, None, None], extra.shape))  # constant maps


def test_minibatch_stddev_epsilon_inside_sqrt():
    x = np.ones((4, 2, 2, 1))
    got = modconv.minibatch_stddev(tf.constant(x)).numpy()[..., -1]
    np.testing.assert_allclose(got, 1e-4, rtol=1e-10)


def test_minibatch_stddev_rejects_indivisible_batch():
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError)):
        modconv.minibatch_stddev(tf.zeros([6, 2, 2, 3]), group_size=4)


@pytest.mark.parametrize("ksize,c_in,c_mid,r,size", [(3, 5, 7, 3, (6, 4)), (1, 4, 6, 3, (3, 3)), (3, 2, 3, 1, (5, 5)),
                                                     (5, 3, 4, 2, (4, 7))])
def test_modulated_conv_to_rgb_equals_the_two_convs(ksize, c_in, c_mid, r, size):
    rng = np.random.default_rng(ksize + c_in)
    x = rng.standard_normal((3,) + size + (c_in,))
    w1, w2 = rng.standard_normal((ksize, ksize, c_in, c_mid)), rng.standard_normal((1, 1, c_mid, r))
    s1, s2 = rng.standard_normal((3, c_in)) * 0.3 + 1.0, rng.standard_normal((3, c_mid)) * 0.3 + 1.0
    want = np_modulated_conv_2d(np_modulated_conv_2d(x, w1, s1), w2, s2, demodulate=False)
    got = modconv.modulated_conv_to_rgb(*(tf.constant(a) for a in (x, w1, s1, w2, s2))).numpy()
    _close(got, want)
