"""FIR resampling ops (`upfirdn_2d`, `upsample_2d`, `downsample_2d`, `upsample_conv_2d`, `conv_downsample_2d`,
`conv_2d`) against the NumPy oracles, plus invariants that follow from the StyleGAN2 definitions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import tensorflow as tf

from dnnlib.tflib.ops import upfirdn_2d as ops
from ops_oracle import (np_conv2d_same, np_conv_downsample_2d, np_downsample_2d, np_upfirdn_2d, np_upsample_2d,
                        np_upsample_conv_2d, normalized_kernel)

KERNELS = {
    "1331": normalized_kernel([1, 3, 3, 1]),
    "nonsep2x2": np.array([[1.0, 2.0], [3.0, 5.0]]),
    "nonsep3x3": np.array([[0.0, 1.0, -2.0], [3.0, 0.5, 1.0], [-1.0, 4.0, 2.0]]),
    "sep_nonsquare": np.outer([1.0, 2.0, 3.0], [1.0, 0.5]),
    "random3x4": np.random.default_rng(7).standard_normal((3, 4)),
}
# (up, down, pad0, pad1)
GEOMETRIES = [(1, 1, 0, 0), (2, 1, 2, 1), (1, 2, 1, 1), (2, 2, -1, 3), (3, 1, -2, -1), (1, 3, 2, 0), (2, 1, 0, -2)]


def _x(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _close(got, want, tol=1e-12):
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got, want, rtol=0, atol=tol * max(1.0, np.abs(want).max()))


@pytest.mark.parametrize("polyphase", [True, False], ids=["polyphase", "reference"])
@pytest.mark.parametrize("kname", sorted(KERNELS))
@pytest.mark.parametrize("geom", GEOMETRIES, ids=lambda g: "u{}d{}p{}_{}".format(*g))
def test_upfirdn_2d_matches_oracle(kname, geom, polyphase):
    up, down, pad0, pad1 = geom
    x, k = _x((2, 5, 6, 3)), KERNELS[kname]
    got = ops.upfirdn_2d(tf.constant(x), k, up=up, down=down, pad0=pad0, pad1=pad1, polyphase=polyphase)
    assert got.dtype == tf.float64
    _close(got.numpy(), np_upfirdn_2d(x, k, up=up, down=down, pad0=pad0, pad1=pad1))


def test_polyphase_matches_the_oracle_on_every_small_geometry():
    """Every separable kernel length 1-5, factor 1-3 and pad -2..3 on tiny odd/even sizes (the phase bookkeeping)."""
    rng = np.random.default_rng(11)
    checked = 0
    for kh, kw in [(4, 4), (3, 2), (1, 3), (5, 1)]:
        k = np.outer(rng.standard_normal(kh), rng.standard_normal(kw))
        for (up, down), pad0, pad1 in itertools.product([(2, 1), (3, 1), (1, 2), (1, 3)], range(-2, 4), range(-2, 4)):
            x = rng.standard_normal((1, 5, 4, 2))
            if min(4 * up + pad0 + pad1 - kh, 4 * up + pad0 + pad1 - kw) < 0:
                continue  # empty output
            want = np_upfirdn_2d(x, k, up=up, down=down, pad0=pad0, pad1=pad1)
            _close(ops.upfirdn_2d(tf.constant(x), k, up=up, down=down, pad0=pad0, pad1=pad1).numpy(), want)
            checked += 1
    assert checked > 400


def test_upfirdn_2d_is_a_true_convolution_not_a_correlation():
    x = np.arange(5.0).reshape(1, 1, 5, 1)
    # 1x2 kernel [[1, 0]]: true convolution picks the *later* sample, y[j] = x[j + 1].
    got = ops.upfirdn_2d(tf.constant(x), np.array([[1.0, 0.0]])).numpy()
    np.testing.assert_array_equal(got.ravel(), [1.0, 2.0, 3.0, 4.0])
    got = ops.upfirdn_2d(tf.constant(x), np.array([[0.0, 1.0]])).numpy()
    np.testing.assert_array_equal(got.ravel(), [0.0, 1.0, 2.0, 3.0])


def test_upfirdn_2d_zero_insertion_and_crop_by_value():
    x = np.array([1.0, 2.0, 3.0]).reshape(1, 1, 3, 1)
    got = ops.upfirdn_2d(tf.constant(x), np.ones([1, 1]), up=2, pad0=0, pad1=0).numpy()
    assert got.shape == (1, 2, 6, 1)
    np.testing.assert_array_equal(got[0, :, :, 0], [[1.0, 0.0, 2.0, 0.0, 3.0, 0.0], [0.0] * 6])
    x = np.arange(1.0, 10.0).reshape(1, 3, 3, 1)
    got = ops.upfirdn_2d(tf.constant(x), np.ones([1, 1]), up=2, pad0=-1, pad1=1).numpy()[0, :, :, 0]
    want = np.zeros((6, 6))
    want[1, 1], want[1, 3], want[3, 1], want[3, 3] = 5.0, 6.0, 8.0, 9.0
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("k", [None, [1, 3, 3, 1], [1, 2, 1], [1, 3, 1, 2]], ids=str)
@pytest.mark.parametrize("factor", [2, 3])
@pytest.mark.parametrize("gain", [1.0, 2.5])
def test_upsample_and_downsample_match_oracle(k, factor, gain):
    x = _x((2, 6, 6, 3), seed=1)
    _close(ops.upsample_2d(tf.constant(x), k, factor=factor, gain=gain).numpy(),
           np_upsample_2d(x, k, factor=factor, gain=gain))
    _close(ops.downsample_2d(tf.constant(x), k, factor=factor, gain=gain).numpy(),
           np_downsample_2d(x, k, factor=factor, gain=gain))


def test_nearest_and_box_when_no_kernel():
    x = _x((1, 3, 4, 2), seed=2)
    up = ops.upsample_2d(tf.constant(x), None).numpy()
    np.testing.assert_allclose(up, np.repeat(np.repeat(x, 2, axis=1), 2, axis=2), atol=1e-15)
    y = _x((1, 4, 6, 2), seed=3)
    down = ops.downsample_2d(tf.constant(y), None).numpy()
    np.testing.assert_allclose(down, y.reshape(1, 2, 2, 3, 2, 2).mean(axis=(2, 4)), atol=1e-15)


# (kernel height/width, C_in, C_out)
CONV_SHAPES = [(3, 3, 5), (1, 3, 5), (3, 5, 3), (1, 1, 1)]


@pytest.mark.parametrize("wshape", CONV_SHAPES, ids=lambda s: "k{}_{}to{}".format(*s))
@pytest.mark.parametrize("k", [None, [1, 2, 1]], ids=str)
def test_upsample_conv_2d_matches_oracle(wshape, k):
    kw, cin, cout = wshape
    x, w = _x((2, 4, 5, cin), seed=4), _x((kw, kw, cin, cout), seed=5)
    got = ops.upsample_conv_2d(tf.constant(x), tf.constant(w), k)
    _close(got.numpy(), np_upsample_conv_2d(x, w, [1, 3, 3, 1] if k is None else k))
    assert got.shape == (2, 8, 10, cout)


def test_upsample_conv_2d_factor3_and_gain():
    x, w = _x((1, 3, 4, 3), seed=6), _x((3, 3, 3, 2), seed=7)
    got = ops.upsample_conv_2d(tf.constant(x), tf.constant(w), [1, 3, 3, 1], factor=3, gain=0.7)
    _close(got.numpy(), np_upsample_conv_2d(x, w, [1, 3, 3, 1], factor=3, gain=0.7))
    # As in StyleGAN2, the output is (H - 1) * factor + 2 high: H * factor only for factor 2.
    assert got.shape == (1, 8, 11, 2)


@pytest.mark.parametrize("wshape", CONV_SHAPES, ids=lambda s: "k{}_{}to{}".format(*s))
@pytest.mark.parametrize("k", [None, [1, 2, 1]], ids=str)
def test_conv_downsample_2d_matches_oracle(wshape, k):
    kw, cin, cout = wshape
    x, w = _x((2, 8, 6, cin), seed=8), _x((kw, kw, cin, cout), seed=9)
    got = ops.conv_downsample_2d(tf.constant(x), tf.constant(w), k)
    _close(got.numpy(), np_conv_downsample_2d(x, w, [1, 3, 3, 1] if k is None else k))
    assert got.shape == (2, 4, 3, cout)


def test_conv_downsample_2d_factor3_and_gain():
    x, w = _x((1, 9, 6, 3), seed=10), _x((3, 3, 3, 2), seed=11)
    got = ops.conv_downsample_2d(tf.constant(x), tf.constant(w), [1, 3, 3, 1], factor=3, gain=1.7)
    _close(got.numpy(), np_conv_downsample_2d(x, w, [1, 3, 3, 1], factor=3, gain=1.7))


def test_conv_2d_dispatch():
    x, w = _x((2, 4, 4, 3), seed=12), _x((3, 3, 3, 2), seed=13)
    tx, tw = tf.constant(x), tf.constant(w)
    _close(ops.conv_2d(tx, tw).numpy(), np_conv2d_same(x, w))
    _close(ops.conv_2d(tx, tw, up=True).numpy(), np_upsample_conv_2d(x, w))
    _close(ops.conv_2d(tx, tw, down=True).numpy(), np_conv_downsample_2d(x, w))
    with pytest.raises(ValueError):
        ops.conv_2d(tx, tw, up=True, down=True)


# ---------------------------------------------------------------------------------------------------------------
# invariants


def test_constant_image_stays_constant_in_the_interior():
    x = np.full((1, 6, 6, 2), 1.7)
    up = ops.upsample_2d(tf.constant(x), [1, 3, 3, 1]).numpy()
    np.testing.assert_allclose(up[:, 2:-2, 2:-2], 1.7, rtol=1e-14)
    assert abs(up[0, 0, 0, 0] - 1.7) > 0.1  # the zero padding shows at the border
    down = ops.downsample_2d(tf.constant(x), [1, 3, 3, 1]).numpy()
    np.testing.assert_allclose(down[:, 1:-1, 1:-1], 1.7, rtol=1e-14)


def test_downsample_of_upsample_is_a_3_10_3_smoothing():
    # Up (taps [1,3,3,1]/4 after zero insertion) then down ([1,3,3,1]/8) keeps the even taps of their convolution
    # [1,6,15,20,15,6,1]/32, i.e. the centred 1-D filter [3,10,3]/16 on every axis.
    x = _x((1, 8, 8, 2), seed=14)
    got = ops.downsample_2d(ops.upsample_2d(tf.constant(x), [1, 3, 3, 1]), [1, 3, 3, 1]).numpy()
    want = np_upfirdn_2d(x, normalized_kernel([3, 10, 3]), pad0=1, pad1=1)
    _close(got[:, 2:-2, 2:-2], want[:, 2:-2, 2:-2])
    assert np.abs(got - x).max() > 0.1  # it really smooths


def test_upsample_conv_is_upsample_then_same_conv_in_the_interior():
    # StyleGAN2: upsample_conv_2d is a fused `upsample_2d` followed by a SAME conv (padding only once).
    x, w = _x((2, 5, 5, 3), seed=15), _x((3, 3, 3, 4), seed=16)
    got = ops.upsample_conv_2d(tf.constant(x), tf.constant(w)).numpy()
    want = np_conv2d_same(np_upsample_2d(x, [1, 3, 3, 1]), w)
    _close(got[:, 2:-2, 2:-2], want[:, 2:-2, 2:-2])


def test_conv_downsample_is_same_conv_then_downsample_in_the_interior():
    x, w = _x((2, 8, 8, 3), seed=17), _x((3, 3, 3, 4), seed=18)
    got = ops.conv_downsample_2d(tf.constant(x), tf.constant(w)).numpy()
    want = np_downsample_2d(np_conv2d_same(x, w), [1, 3, 3, 1])
    _close(got[:, 1:-1, 1:-1], want[:, 1:-1, 1:-1])


def test_1x1_resampling_convs_equal_resample_then_matmul_everywhere():
    x, w = _x((2, 4, 6, 3), seed=19), _x((1, 1, 3, 5), seed=20)
    up = ops.upsample_conv_2d(tf.constant(x), tf.constant(w)).numpy()
    _close(up, np.einsum("nhwi,io->nhwo", np_upsample_2d(x, [1, 3, 3, 1]), w[0, 0]))
    down = ops.conv_downsample_2d(tf.constant(x), tf.constant(w)).numpy()
    _close(down, np.einsum("nhwi,io->nhwo", np_downsample_2d(x, [1, 3, 3, 1]), w[0, 0]))


def test_setup_kernel():
    np.testing.assert_allclose(ops.setup_kernel(None), np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64.0)
    np.testing.assert_allclose(ops.setup_kernel([[1, 2], [3, 4]]), np.array([[1, 2], [3, 4]]) / 10.0)
    with pytest.raises(ValueError):
        ops.setup_kernel(np.ones([2, 2, 2]))
