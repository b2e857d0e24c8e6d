"""`tf.function(jit_compile=True)` gives the same values as eager execution for every op (float32, 1e-5 relative),
forward, first derivatives and R1-style second derivatives."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pytest
import tensorflow as tf

from dnnlib.tflib.ops import modconv
from dnnlib.tflib.ops import upfirdn_2d as ops
from dnnlib.tflib.ops.fused_bias_act import bias_act
from ops_oracle import normalized_kernel

REL_TOL = 1e-5


def _values(op: Callable[..., tf.Tensor], r: tf.Tensor, args: Sequence[tf.Tensor]) -> list[tf.Tensor]:
    """Output, gradients of `sum(r * tanh(out))` w.r.t. all args, and gradients of the squared norm of the first one."""
    with tf.GradientTape() as outer:
        outer.watch(args)
        with tf.GradientTape() as inner:
            inner.watch(args)
            y = op(*args)
            loss = tf.reduce_sum(r * tf.tanh(y))
        first = inner.gradient(loss, args)
        norm = tf.reduce_sum(tf.square(first[0]))
    second = outer.gradient(norm, args)
    return [y, *first, *second]


def check_xla_matches_eager(op: Callable[..., tf.Tensor], arrays: Sequence[np.ndarray], seed: int = 0) -> None:
    args = [tf.constant(np.asarray(a, dtype=np.float32)) for a in arrays]
    y = op(*args)
    r = tf.constant(np.random.default_rng(seed).standard_normal(y.shape).astype(np.float32))
    eager = _values(op, r, args)
    compiled = tf.function(lambda *a: _values(op, r, list(a)), jit_compile=True, autograph=False)(*args)
    names = ["output"] + [f"d/darg{i}" for i in range(len(args))] + [f"d2/darg{i}" for i in range(len(args))]
    for name, e, c in zip(names, eager, compiled):
        e, c = e.numpy(), c.numpy()
        assert e.shape == c.shape and c.dtype == np.float32, name
        scale = np.abs(e).max()
        assert scale > 0 or name.startswith("d2"), name
        err = np.abs(e - c).max()
        assert err <= REL_TOL * max(scale, 1e-30), f"{name}: XLA vs eager max error {err:.3g} (scale {scale:.3g})"


def _rng(seed):
    return np.random.default_rng(seed)


@pytest.mark.parametrize("act,clamp", [("linear", None), ("relu", None), ("lrelu", None), ("lrelu", 0.8),
                                       ("tanh", None), ("sigmoid", 2.0)])
def test_bias_act_xla(act, clamp):
    check_xla_matches_eager(lambda x, b: bias_act(x, b, act=act, clamp=clamp),
                            [_rng(0).standard_normal((2, 3, 3, 4)), _rng(1).standard_normal(4)])


@pytest.mark.parametrize("case", [(2, 1, 2, 1, normalized_kernel([1, 3, 3, 1])),
                                  (1, 2, 1, 1, np.array([[0.0, 1.0, -2.0], [3.0, 0.5, 1.0], [-1.0, 4.0, 2.0]])),
                                  (2, 2, -1, 3, _rng(2).standard_normal((3, 4)))],
                         ids=["up2_1331", "down2_nonsep", "up2down2_crop_3x4"])
def test_upfirdn_2d_xla(case):
    up, down, pad0, pad1, k = case
    check_xla_matches_eager(lambda x: ops.upfirdn_2d(x, k, up=up, down=down, pad0=pad0, pad1=pad1),
                            [_rng(3).standard_normal((2, 5, 6, 3))])


def test_upsample_downsample_2d_xla():
    x = _rng(4).standard_normal((2, 4, 4, 3))
    check_xla_matches_eager(lambda t: ops.upsample_2d(t, [1, 3, 3, 1]), [x])
    check_xla_matches_eager(lambda t: ops.downsample_2d(t, None), [x])


@pytest.mark.parametrize("mode", ["same", "up", "down"])
@pytest.mark.parametrize("ksize", [3, 1])
def test_conv_2d_xla(mode, ksize):
    x, w = _rng(5).standard_normal((2, 6, 4, 3)), _rng(6).standard_normal((ksize, ksize, 3, 5))
    check_xla_matches_eager(lambda a, b: ops.conv_2d(a, b, up=mode == "up", down=mode == "down"), [x, w])


@pytest.mark.parametrize("mode,demodulate", [("same", True), ("up", True), ("down", True), ("same", False)])
def test_modulated_conv_2d_xla(mode, demodulate):
    x, w = _rng(7).standard_normal((2, 4, 6, 3)), _rng(8).standard_normal((3, 3, 3, 5))
    s = _rng(9).standard_normal((2, 3)) * 0.3 + 1.0
    check_xla_matches_eager(lambda a, b, c: modconv.modulated_conv_2d(a, b, c, demodulate=demodulate,
                                                                      up=mode == "up", down=mode == "down"), [x, w, s])


@pytest.mark.parametrize("n,num_channels", [(8, 1), (8, 2), (2, 1)])
def test_minibatch_stddev_xla(n, num_channels):
    check_xla_matches_eager(lambda t: modconv.minibatch_stddev(t, group_size=4, num_channels=num_channels),
                            [_rng(10).standard_normal((n, 3, 3, 4))])


def test_modulated_conv_to_rgb_xla():
    x, w1, w2 = (_rng(11).standard_normal((2, 4, 6, 3)), _rng(12).standard_normal((3, 3, 3, 5)),
                 _rng(13).standard_normal((1, 1, 5, 3)))
    s1, s2 = _rng(14).standard_normal((2, 3)) * 0.3 + 1.0, _rng(15).standard_normal((2, 5)) * 0.3 + 1.0
    check_xla_matches_eager(modconv.modulated_conv_to_rgb, [x, w1, s1, w2, s2])
