"""Bias + activation (+ gain, + clamp), the pure-TF equivalent of StyleGAN2's `fused_bias_act`.

All activations are written with elementwise TF ops, so they are twice differentiable and XLA fuses the whole
expression into one kernel.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import tensorflow as tf


class Activation(NamedTuple):
    """An activation function with its default gain (the gain that keeps unit variance for N(0,1) input)."""

    func: Callable[[tf.Tensor, float], tf.Tensor]
    default_gain: float


def _lrelu(x: tf.Tensor, alpha: float) -> tf.Tensor:
    return tf.where(x >= 0, x, x * alpha)


ACTIVATIONS: dict[str, Activation] = {
    "linear": Activation(lambda x, a: x, 1.0),
    "relu": Activation(lambda x, a: tf.maximum(x, 0.0), math.sqrt(2.0)),
    "lrelu": Activation(_lrelu, math.sqrt(2.0)),
    "tanh": Activation(lambda x, a: tf.tanh(x), 1.0),
    "sigmoid": Activation(lambda x, a: tf.sigmoid(x), 1.0),
}


def bias_act(
    x: tf.Tensor,
    b: tf.Tensor | None = None,
    act: str = "linear",
    alpha: float = 0.2,
    gain: float | None = None,
    clamp: float | None = None,
) -> tf.Tensor:
    """Adds a per-channel bias, applies an activation, scales by a gain and optionally clamps.

    Computes `clip(act(x + b) * gain, -clamp, clamp)`.

    Args:
        x: Input of any rank `[..., C]`; the channel axis is the last one (NHWC / dense features).
        b: Optional bias `[C]`.
        act: One of `linear`, `relu`, `lrelu` (slope `alpha`), `tanh`, `sigmoid`.
        alpha: Negative slope of `lrelu`.
        gain: Output multiplier; `None` uses the activation's default (√2 for relu/lrelu, 1 otherwise).
        clamp: Optional symmetric clamp of the output.

    Returns:
        Tensor of the same shape and dtype as `x`.
    """
    if act not in ACTIVATIONS:
        raise ValueError(f"unknown activation {act!r}; expected one of {sorted(ACTIVATIONS)}")
    spec = ACTIVATIONS[act]
    if b is not None:
        b = tf.cast(b, x.dtype)
        # BiasAdd adds exactly what `+` adds; its gradient is one BiasAddGrad op instead of a broadcast reduction.
        same = len(x.shape) >= 2 and len(b.shape) == 1 and x.shape[-1] is not None and b.shape[0] == x.shape[-1]
        x = tf.nn.bias_add(x, b) if same else x + b
    x = spec.func(x, alpha)
    gain = spec.default_gain if gain is None else gain
    if gain != 1:
        x = x * gain
    if clamp is not None:
        x = tf.clip_by_value(x, -clamp, clamp)
    return x
