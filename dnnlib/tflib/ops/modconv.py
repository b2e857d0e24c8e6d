"""Modulated convolution (StyleGAN2 weight modulation/demodulation) and minibatch standard deviation, NHWC."""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from dnnlib.tflib.ops.upfirdn_2d import conv_2d

DEMOD_EPS = 1e-8
MBSTD_EPS = 1e-8


def demodulation_coefficients(w: tf.Tensor, s: tf.Tensor) -> tf.Tensor:
    """Per-sample output scale `rsqrt(sum_{kh,kw,in} (w * s)^2 + 1e-8)`.

    Args:
        w: Weight `[kh, kw, C_in, C_out]` (runtime-scaled).
        s: Styles `[B, C_in]`.

    Returns:
        `[B, C_out]`.
    """
    w_sq = tf.reduce_sum(tf.square(w), axis=[0, 1])  # [C_in, C_out]
    return tf.math.rsqrt(tf.matmul(tf.square(s), w_sq) + DEMOD_EPS)


def modulated_conv_2d(x: tf.Tensor, w: tf.Tensor, s: tf.Tensor | None, demodulate: bool = True,
                      up: bool = False, down: bool = False, k: Sequence[float] | None = None) -> tf.Tensor:
    """Convolution whose weights are modulated per sample by a style, with optional demodulation.

    Mathematically `conv(x, w * s[:, None, None, :, None]) * d` with `d` from `demodulation_coefficients`; computed
    in the non-fused form (scale the input channels by `s`, run one shared convolution, scale the output channels by
    `d`), which needs no grouped convolution and so also runs on CPU.

    Args:
        x: Input `[B, H, W, C_in]`.
        w: Weight `[kh, kw, C_in, C_out]` (runtime-scaled).
        s: Styles `[B, C_in]` (already including the +1), or `None` for a plain (unmodulated, undemodulated) conv.
        demodulate: Whether to normalize each output channel to unit expected variance.
        up: Upsample x2 (transposed conv + FIR).
        down: Downsample x2 (FIR + strided conv).
        k: FIR kernel for resampling.

    Returns:
        `[B, H', W', C_out]`.
    """
    if s is None:
        return conv_2d(x, w, up=up, down=down, k=k)
    s = tf.cast(s, x.dtype)
    x = x * s[:, None, None, :]
    x = conv_2d(x, w, up=up, down=down, k=k)
    if demodulate:
        x = x * demodulation_coefficients(w, s)[:, None, None, :]
    return x


def minibatch_stddev(x: tf.Tensor, group_size: int = 4, num_channels: int = 1) -> tf.Tensor:
    """Appends the minibatch standard deviation as extra feature maps (StyleGAN2 semantics, NHWC).

    The batch `N` is viewed as `[G, N/G]`: samples whose index has the same value modulo `N/G` form one group. The
    std over each group (variance + 1e-8 inside the sqrt) is averaged over H, W and the channels of each of the
    `num_channels` channel groups, then broadcast to every group member as constant maps.

    Args:
        x: Features `[N, H, W, C]`; `N` must be divisible by `min(group_size, N)`.
        group_size: Maximum group size G.
        num_channels: Number of extra feature maps (channel groups).

    Returns:
        `[N, H, W, C + num_channels]`.
    """
    shape = tf.shape(x)
    n, h, w_, c = shape[0], shape[1], shape[2], x.shape[3]
    g = tf.minimum(group_size, n)
    y = tf.reshape(x, [g, -1, h, w_, num_channels, c // num_channels])  # [G, M, H, W, F, c]
    y = y - tf.reduce_mean(y, axis=0)
    y = tf.sqrt(tf.reduce_mean(tf.square(y), axis=0) + MBSTD_EPS)  # [M, H, W, F, c]
    y = tf.reduce_mean(y, axis=[1, 2, 4])  # [M, F]
    y = tf.tile(y, [g, 1])  # [N, F]: row i holds group i mod M
    y = tf.broadcast_to(y[:, None, None, :], [n, h, w_, num_channels])
    return tf.concat([x, tf.cast(y, x.dtype)], axis=3)
