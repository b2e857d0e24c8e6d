"""First and second derivatives of every op against central finite differences, in float64.

First order: the gradient of `sum(r * op(args))` (fixed random `r`) w.r.t. every argument.
Second order, as R1 does: the gradient w.r.t. every argument of `||d/dx sum(r * tanh(op(x, ...)))||^2`, checked
against finite differences of that (analytically computed) first-derivative norm. The `tanh` makes the inner
gradient depend on `x` even for linear ops, so the gradient-of-gradient really goes through the op twice.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pytest
import tensorflow as tf

from dnnlib.tflib.ops import modconv
from dnnlib.tflib.ops import upfirdn_2d as ops
from dnnlib.tflib.ops.fused_bias_act import bias_act
from ops_oracle import central_difference, normalized_kernel, probe_indices

MAX_PROBES = 16  # coordinates checked per argument


def _assert_matches_fd(analytic: np.ndarray, fd: np.ndarray, tol: float, what: str) -> None:
    err = np.abs(analytic - fd).max()
    scale = max(1.0, np.abs(fd).max())
    assert err <= tol * scale, f"{what}: max |analytic - FD| = {err:.3g} (scale {scale:.3g})"


def check_derivatives(op: Callable[..., tf.Tensor], args: Sequence[np.ndarray], seed: int = 0) -> None:
    """Checks first and second derivatives of `op(*args)` w.r.t. every argument (the first one plays `x` of R1)."""
    targs = [tf.constant(np.asarray(a, dtype=np.float64)) for a in args]
    y = op(*targs)
    assert y.dtype == tf.float64
    r = tf.constant(np.random.default_rng(seed).standard_normal(y.shape))

    def linear_loss(*a):
        return tf.reduce_sum(r * op(*a))

    def r1_norm(*a):
        with tf.GradientTape() as tape:
            tape.watch(a[0])
            loss = tf.reduce_sum(r * tf.tanh(op(*a)))
        return tf.reduce_sum(tf.square(tape.gradient(loss, a[0])))

    # Analytic derivatives, eagerly.
    with tf.GradientTape() as tape:
        tape.watch(targs)
        first = linear_loss(*targs)
    grads1 = tape.gradient(first, targs)
    with tf.GradientTape() as tape:
        tape.watch(targs)
        norm = r1_norm(*targs)
    grads2 = tape.gradient(norm, targs)

    # Finite differences, on graph-compiled scalar functions (one trace each; only values change).
    scalar_fns = {"first": (tf.function(linear_loss, autograph=False), grads1, 1e-6, 1e-7),
                  "second": (tf.function(r1_norm, autograph=False), grads2, 1e-5, 1e-6)}
    for order, (fn, grads, step, tol) in scalar_fns.items():
        for i, a in enumerate(targs):
            assert grads[i] is not None and grads[i].dtype == tf.float64, f"{order} derivative w.r.t. arg {i}"

            def at(v, i=i, fn=fn):
                return float(fn(*[tf.constant(v) if j == i else t for j, t in enumerate(targs)]))

            idx = probe_indices(int(np.prod(a.shape)), MAX_PROBES, seed=seed + i)
            fd = central_difference(at, a.numpy(), step, idx)
            _assert_matches_fd(grads[i].numpy().ravel()[idx], fd, tol, f"{order} derivative w.r.t. arg {i}")
        assert any(np.abs(g.numpy()).max() > 1e-3 for g in grads), f"{order} derivatives are all ~0"


def _rng(seed):
    return np.random.default_rng(seed)


def _away_from(values: np.ndarray, lo: float, hi: float, seed: int) -> np.ndarray:
    """Random signs times magnitudes drawn from [0.3, lo] or [hi, 1.5] (away from 0 and from (lo, hi))."""
    rng = _rng(seed)
    mag = np.where(rng.random(values.shape) < 0.5, rng.uniform(0.3, lo, values.shape), rng.uniform(hi, 1.5, values.shape))
    return np.where(rng.random(values.shape) < 0.5, -mag, mag)


@pytest.mark.parametrize("act", ["linear", "relu", "lrelu", "tanh", "sigmoid"])
@pytest.mark.parametrize("clamp", [None, 1.0])
def test_bias_act_derivatives(act, clamp):
    # Pre-activations v = x + b keep away from the kinks at 0 and from the clamp boundaries (|out| = 1).
    b = _rng(1).standard_normal(3)
    v = _away_from(np.zeros((2, 2, 2, 3)), 0.55, 0.85, seed=2)
    check_derivatives(lambda x, bb: bias_act(x, bb, act=act, clamp=clamp), [v - b, b])


UPFIRDN_CASES = [(2, 1, 2, 1, normalized_kernel([1, 3, 3, 1])),
                 (1, 2, 1, 1, np.array([[0.0, 1.0, -2.0], [3.0, 0.5, 1.0], [-1.0, 4.0, 2.0]]) / 8),
                 (2, 2, -1, 3, _rng(3).standard_normal((3, 4)) / 4)]


@pytest.mark.parametrize("case", UPFIRDN_CASES, ids=["up2_1331", "down2_nonsep", "up2down2_crop_3x4"])
def test_upfirdn_2d_derivatives(case):
    up, down, pad0, pad1, k = case
    check_derivatives(lambda x: ops.upfirdn_2d(x, k, up=up, down=down, pad0=pad0, pad1=pad1),
                      [_rng(4).standard_normal((1, 4, 5, 2))])


@pytest.mark.parametrize("polyphase", [True, False], ids=["polyphase", "reference"])
@pytest.mark.parametrize("geom", [(1, 3, 2, 0), (3, 1, -2, -1)], ids=["down3", "up3_crop"])
def test_separable_upfirdn_2d_derivatives_on_both_paths(geom, polyphase):
    up, down, pad0, pad1 = geom
    k = np.outer(_rng(19).standard_normal(3), _rng(20).standard_normal(4)) / 4
    check_derivatives(lambda x: ops.upfirdn_2d(x, k, up=up, down=down, pad0=pad0, pad1=pad1, polyphase=polyphase),
                      [_rng(21).standard_normal((1, 4, 5, 2))])


@pytest.mark.parametrize("k", [None, [1, 3, 3, 1]], ids=["nearest_box", "1331"])
def test_upsample_downsample_2d_derivatives(k):
    x = _rng(5).standard_normal((1, 4, 4, 2))
    check_derivatives(lambda t: ops.upsample_2d(t, k), [x])
    check_derivatives(lambda t: ops.downsample_2d(t, k), [x])


@pytest.mark.parametrize("ksize", [3, 1])
def test_upsample_conv_2d_derivatives(ksize):
    x, w = _rng(6).standard_normal((1, 3, 4, 3)), _rng(7).standard_normal((ksize, ksize, 3, 2)) / ksize
    check_derivatives(ops.upsample_conv_2d, [x, w])


@pytest.mark.parametrize("ksize", [3, 1])
def test_conv_downsample_2d_derivatives(ksize):
    x, w = _rng(8).standard_normal((1, 6, 4, 3)), _rng(9).standard_normal((ksize, ksize, 3, 2)) / ksize
    check_derivatives(ops.conv_downsample_2d, [x, w])


@pytest.mark.parametrize("mode,demodulate", [("same", True), ("up", True), ("down", True), ("same", False)])
def test_modulated_conv_2d_derivatives(mode, demodulate):
    size = 6 if mode == "down" else 4
    x = _rng(10).standard_normal((2, size, size, 3))
    w = _rng(11).standard_normal((3, 3, 3, 2)) / 3
    s = _rng(12).standard_normal((2, 3)) * 0.3 + 1.0
    check_derivatives(lambda a, b, c: modconv.modulated_conv_2d(a, b, c, demodulate=demodulate,
                                                                up=mode == "up", down=mode == "down"), [x, w, s])


@pytest.mark.parametrize("n,num_channels", [(8, 2), (2, 1)])
def test_minibatch_stddev_derivatives(n, num_channels):
    x = _rng(13).standard_normal((n, 2, 2, 4))
    check_derivatives(lambda t: modconv.minibatch_stddev(t, group_size=4, num_channels=num_channels), [x])


def test_the_check_catches_a_wrong_gradient():
    @tf.custom_gradient
    def bad_square(x):
        return tf.square(x), lambda dy: dy * 2.1 * x  # 5% off

    with pytest.raises(AssertionError, match="first derivative"):
        check_derivatives(bad_square, [_rng(14).standard_normal((2, 3))])


def test_modulated_conv_to_rgb_derivatives():
    x = _rng(14).standard_normal((2, 4, 3, 3))
    w1, w2 = _rng(15).standard_normal((3, 3, 3, 4)) / 3, _rng(16).standard_normal((1, 1, 4, 2)) / 2
    s1, s2 = _rng(17).standard_normal((2, 3)) * 0.3 + 1.0, _rng(18).standard_normal((2, 4)) * 0.3 + 1.0
    check_derivatives(modconv.modulated_conv_to_rgb, [x, w1, s1, w2, s2])
