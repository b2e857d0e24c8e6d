"""Per-image noise maps for a projection that optimizes them, and their regularization.

The synthesis network reads its `const` noise from `noise_bufs` (`[lead, r, r, 1]`, tiled over the batch). A
projection of B images that optimizes the noise gives a shallow copy of the synthesis network its own list of
buffers `[B * lead, r, r, 1]` (initialized with the model's stored noise, so the starting image is the one
`generate.py` makes); the copy shares every weight, and the model itself is never modified.

Regularization (StyleGAN2-ADA's): for each map and each of its 2x average-pooled versions down to 8x8, the squared
mean of the product of the map with itself shifted by one pixel, down and right; summed per image. It keeps the
maps from encoding image content in spatially correlated noise. After every step each map is renormalized to zero
mean and unit variance per image.
"""

from __future__ import annotations

import copy
from typing import Any

import tensorflow as tf

REGULARIZE_DOWN_TO = 8


def noise_synthesis(synthesis: Any, batch: int) -> tuple[Any, list[tf.Variable]]:
    """A shallow copy of `synthesis` whose `const` noise are new per-image variables `[B * lead, r, r, 1]`.

    Returns:
        (the copy, its noise variables).
    """
    variables = [tf.Variable(tf.tile(buf, [batch, 1, 1, 1]), trainable=True, name=f"projected_noise{i}")
                 for i, buf in enumerate(synthesis.noise_bufs)]
    twin = copy.copy(synthesis)
    twin.noise_bufs = variables
    return twin, variables


def regularization(noises: list[tf.Tensor], batch: int) -> tf.Tensor:
    """Noise regularization `[B]` of noise maps `[B * lead, r, r, 1]` (see the module docstring)."""
    total = tf.zeros([batch])
    for n in noises:
        while True:
            right = tf.reduce_mean(n * tf.roll(n, shift=1, axis=2), axis=[1, 2, 3])
            down = tf.reduce_mean(n * tf.roll(n, shift=1, axis=1), axis=[1, 2, 3])
            total += tf.reduce_sum(tf.reshape(tf.square(right) + tf.square(down), [batch, -1]), axis=1)
            if n.shape[1] <= REGULARIZE_DOWN_TO:
                break
            n = tf.nn.avg_pool2d(n, 2, 2, "VALID")
    return total


def renormalize(variables: list[tf.Variable]) -> None:
    """Zero mean, unit variance of every noise map, per image."""
    for v in variables:
        mean, var = tf.nn.moments(v, axes=[1, 2, 3], keepdims=True)
        v.assign((v - mean) * tf.math.rsqrt(var + 1e-8))
