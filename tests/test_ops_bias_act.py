"""`bias_act` against the NumPy oracle for every activation, gain and clamp (values; derivatives and XLA live in
test_ops_derivatives.py / test_ops_xla.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from dnnlib.tflib.ops.fused_bias_act import ACTIVATIONS, bias_act
from ops_oracle import np_bias_act

ACTS = ["linear", "relu", "lrelu", "tanh", "sigmoid"]


def test_activation_table_is_the_tested_one():
    assert sorted(ACTIVATIONS) == sorted(ACTS)


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("gain", [None, 0.5, 3.0])
@pytest.mark.parametrize("clamp", [None, 0.4])
@pytest.mark.parametrize("with_bias", [False, True])
def test_bias_act_matches_oracle(act, gain, clamp, with_bias):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 4, 5)) * 2.0
    b = rng.standard_normal(5) if with_bias else None
    got = bias_act(tf.constant(x), None if b is None else tf.constant(b), act=act, gain=gain, clamp=clamp)
    assert got.dtype == tf.float64 and got.shape == x.shape
    np.testing.assert_allclose(got.numpy(), np_bias_act(x, b, act, gain=gain, clamp=clamp), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("act", ACTS)
def test_bias_act_float32_dense_features(act):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 7)).astype(np.float32)
    b = rng.standard_normal(7).astype(np.float32)
    got = bias_act(tf.constant(x), tf.constant(b), act=act)
    assert got.dtype == tf.float32
    np.testing.assert_allclose(got.numpy(), np_bias_act(x.astype(np.float64), b, act), rtol=1e-6, atol=1e-6)


def test_lrelu_alpha_and_default_gains_by_value():
    x = tf.constant([[-2.0, -0.5, 0.0, 1.5]], dtype=tf.float64)
    r2 = math.sqrt(2.0)
    np.testing.assert_allclose(bias_act(x, act="lrelu").numpy(), [[-0.4 * r2, -0.1 * r2, 0.0, 1.5 * r2]], rtol=1e-15)
    np.testing.assert_allclose(bias_act(x, act="lrelu", alpha=0.1, gain=1.0).numpy(), [[-0.2, -0.05, 0.0, 1.5]],
                               rtol=1e-15)
    np.testing.assert_allclose(bias_act(x, act="relu").numpy(), [[0.0, 0.0, 0.0, 1.5 * r2]], rtol=1e-15)
    np.testing.assert_allclose(bias_act(x, tf.constant([1.0], tf.float64), act="linear").numpy(),
                               [[-1.0, 0.5, 1.0, 2.5]], rtol=1e-15)
    np.testing.assert_allclose(bias_act(x, act="linear", gain=2.0, clamp=1.0).numpy(), [[-1.0, -1.0, 0.0, 1.0]])


def test_bias_is_per_channel_on_last_axis():
    x = tf.zeros([2, 3, 3, 4], tf.float64)
    b = tf.constant([1.0, -1.0, 2.0, 0.5], tf.float64)
    got = bias_act(x, b, act="linear").numpy()
    np.testing.assert_array_equal(got, np.broadcast_to([1.0, -1.0, 2.0, 0.5], (2, 3, 3, 4)))


def test_unknown_activation_is_rejected():
    with pytest.raises(ValueError, match="swishy"):
        bias_act(tf.zeros([1, 2]), act="swishy")
