"""The polyphase form of `upfirdn_2d` against its literal reference form: values, first and R1-style second
derivatives, eagerly and under `jit_compile=True`, on the geometries the networks use; reduced precision and a
dynamic batch. (A depthwise-convolution form of the polyphase FIR had fewer graph ops but made a whole XLA training
step on CPU 5x slower; see benchmarks/results/startup-notes.md.)"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from dnnlib.tflib.ops import upfirdn_2d as ops
from ops_oracle import normalized_kernel

K1331 = normalized_kernel([1, 3, 3, 1])
# (name, fn(x, polyphase)) for the calls the networks make: the upsample of the skip ToRGB, the blur after a
# transposed conv, the blur before a strided conv, the resnet skip downsample, and odd factors/crops/long kernels.
CASES = [
    ("upsample2", lambda x, pp: ops.upfirdn_2d(x, K1331 * 4, up=2, pad0=2, pad1=1, polyphase=pp)),
    ("blur_after_tconv", lambda x, pp: ops.upfirdn_2d(x, K1331 * 4, pad0=1, pad1=1, polyphase=pp)),
    ("blur_before_sconv", lambda x, pp: ops.upfirdn_2d(x, K1331, pad0=2, pad1=2, polyphase=pp)),
    ("downsample2", lambda x, pp: ops.upfirdn_2d(x, K1331, down=2, pad0=1, pad1=1, polyphase=pp)),
    ("up3_crop_6tap", lambda x, pp: ops.upfirdn_2d(x, normalized_kernel([1, 5, 10, 10, 5, 1]), up=3, pad0=-2,
                                                  pad1=-1, polyphase=pp)),
    ("down3_pad_sep_3x2", lambda x, pp: ops.upfirdn_2d(x, np.outer([1.0, 2.0, 3.0], [1.0, -0.5]), down=3, pad0=2,
                                                      pad1=0, polyphase=pp)),
]


def _values(fn, x: tf.Tensor, r: tf.Tensor) -> list[tf.Tensor]:
    """Output, d/dx sum(r * tanh(out)) and the gradient of that gradient's squared norm (R1's second order)."""
    with tf.GradientTape() as outer:
        outer.watch(x)
        with tf.GradientTape() as inner:
            inner.watch(x)
            y = fn(x)
            loss = tf.reduce_sum(r * tf.tanh(y))
        first = inner.gradient(loss, x)
        norm = tf.reduce_sum(tf.square(first))
    return [y, first, outer.gradient(norm, x)]


def _inputs(fn, dtype=np.float64, shape=(2, 7, 6, 3)):
    x = tf.constant(np.random.default_rng(0).standard_normal(shape).astype(dtype))
    y = fn(x, False)
    return x, tf.constant(np.random.default_rng(1).standard_normal(y.shape).astype(dtype))


@pytest.mark.parametrize("name,fn", CASES, ids=[c[0] for c in CASES])
def test_polyphase_equals_reference_with_second_derivatives(name, fn):
    x, r = _inputs(fn)
    want = _values(lambda t: fn(t, False), x, r)
    got = _values(lambda t: fn(t, True), x, r)
    for what, g, w in zip(["output", "first derivative", "second derivative"], got, want):
        assert g.shape == w.shape, what
        assert np.abs(w.numpy()).max() > 1e-3, what
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=0, atol=1e-12 * np.abs(w.numpy()).max(), err_msg=what)


@pytest.mark.parametrize("name,fn", CASES[:4], ids=[c[0] for c in CASES[:4]])
def test_polyphase_under_xla_equals_reference_eagerly(name, fn):
    """R1 runs a gradient of a gradient inside `jit_compile=True`: every order must compile and agree."""
    x, r = _inputs(fn, np.float32)
    want = _values(lambda t: fn(t, False), x, r)
    got = tf.function(lambda t: _values(lambda u: fn(u, True), t, r), jit_compile=True, autograph=False)(x)
    for what, g, w in zip(["output", "first derivative", "second derivative"], got, want):
        scale = np.abs(w.numpy()).max()
        assert g.dtype == tf.float32 and scale > 1e-3, what
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=0, atol=1e-5 * scale, err_msg=what)


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
def test_polyphase_in_reduced_precision(dtype):
    x = tf.constant(np.random.default_rng(2).uniform(-1, 1, (1, 8, 8, 5)).astype(np.float32))
    for fn in (lambda t: ops.upsample_2d(t, [1, 3, 3, 1]), lambda t: ops.downsample_2d(t, [1, 3, 3, 1])):
        want = fn(x).numpy()
        got = fn(tf.cast(x, dtype))
        assert got.dtype == dtype
        np.testing.assert_allclose(tf.cast(got, tf.float32).numpy(), want, rtol=0, atol=2e-2)


def test_polyphase_with_a_dynamic_batch():
    fn = tf.function(lambda t: ops.upsample_2d(t, [1, 3, 3, 1]), autograph=False,
                     input_signature=[tf.TensorSpec([None, 4, 4, 2], tf.float32)])
    x = tf.constant(np.random.default_rng(3).standard_normal((3, 4, 4, 2)).astype(np.float32))
    want = ops.upfirdn_2d(x, ops.setup_kernel([1, 3, 3, 1]) * 4, up=2, pad0=2, pad1=1, polyphase=False)
    got = fn(x)
    assert got.shape == (3, 8, 8, 2)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=0, atol=1e-6)
