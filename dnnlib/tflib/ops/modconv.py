"""Modulated convolution (StyleGAN2 weight modulation/demodulation) and minibatch standard deviation, NHWC."""

from __future__ import annotations

from typing import Sequence

import numpy as np
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

    Mixed precision: with `x` in float16/bfloat16 and `w` float32, the convolution runs in `x`'s dtype and the
    styles and demodulation coefficients are computed in float32 (`_reduced_modulated_conv_2d`).

    Args:
        x: Input `[B, H, W, C_in]` (float32, or float16/bfloat16 in a reduced-precision layer).
        w: Weight `[kh, kw, C_in, C_out]` (runtime-scaled, float32).
        s: Styles `[B, C_in]` (already including the +1), or `None` for a plain (unmodulated, undemodulated) conv.
        demodulate: Whether to normalize each output channel to unit expected variance.
        up: Upsample x2 (transposed conv + FIR).
        down: Downsample x2 (FIR + strided conv).
        k: FIR kernel for resampling.

    Returns:
        `[B, H', W', C_out]` in `x`'s dtype.
    """
    if s is None:
        return conv_2d(x, tf.cast(w, x.dtype), up=up, down=down, k=k)
    if x.dtype != w.dtype:
        return _reduced_modulated_conv_2d(x, w, s, demodulate, up, down, k)
    s = tf.cast(s, x.dtype)
    x = x * s[:, None, None, :]
    x = conv_2d(x, w, up=up, down=down, k=k)
    if demodulate:
        x = x * demodulation_coefficients(w, s)[:, None, None, :]
    return x


def _reduced_modulated_conv_2d(x: tf.Tensor, w: tf.Tensor, s: tf.Tensor, demodulate: bool, up: bool, down: bool,
                               k: Sequence[float] | None) -> tf.Tensor:
    """`modulated_conv_2d` for a float16/bfloat16 `x` with float32 `w` and `s`: the conv in `x`'s dtype.

    With demodulation, `w` is first divided by its largest magnitude per output channel and `s` by its largest
    magnitude per sample (as StyleGAN2-ADA's fp16 path): the demodulation cancels both factors (up to its 1e-8
    epsilon), and the products the reduced-precision conv forms stay far from float16's 65504. The coefficients are
    computed in float32 and cast.

    Args:
        x: Input `[B, H, W, C_in]`, float16 or bfloat16.
        w: Weight `[kh, kw, C_in, C_out]`, float32 (runtime-scaled).
        s: Styles `[B, C_in]`, float32.
        demodulate: Normalize each output channel.
        up: Upsample x2.
        down: Downsample x2.
        k: FIR kernel for resampling.

    Returns:
        `[B, H', W', C_out]` in `x`'s dtype.
    """
    s = tf.cast(s, w.dtype)
    if demodulate:
        w = w / tf.maximum(tf.reduce_max(tf.abs(w), axis=[0, 1, 2], keepdims=True), 1e-30)
        s = s / tf.maximum(tf.reduce_max(tf.abs(s), axis=1, keepdims=True), 1e-30)
    x = x * tf.cast(s, x.dtype)[:, None, None, :]
    x = conv_2d(x, tf.cast(w, x.dtype), up=up, down=down, k=k)
    if demodulate:
        x = x * tf.cast(demodulation_coefficients(w, s), x.dtype)[:, None, None, :]
    return x


def modulated_conv_to_rgb(x: tf.Tensor, w1: tf.Tensor, s1: tf.Tensor, w2: tf.Tensor, s2: tf.Tensor) -> tf.Tensor:
    """A demodulated k×k modulated conv followed directly by a non-demodulated 1x1 modulated conv, as one conv.

    Computes `modulated_conv_2d(modulated_conv_2d(x, w1, s1), w2, s2, demodulate=False)` (the GANformer
    `extraLayer` + ToRGB pair, which has nothing non-linear in between). Both are linear in `x`, so the pair equals
    one per-sample k×k conv from `C_in` to `R` channels with weight
    `W_b[kh, kw, i, r] = s1[b, i] · Σ_m w1[kh, kw, i, m] · d1[b, m] · s2[b, m] · w2[0, 0, m, r]`.
    That conv runs as one batched matmul `[B, H·W, C_in] × [B, C_in, kh·kw·R]` followed by a fixed 0/1 conv that
    adds up the kh·kw shifted taps, so it costs O(H·W·C_in·kh·kw·R) instead of O(H·W·C_in·C_mid·kh·kw).

    In a reduced-precision layer (`x` float16/bfloat16) the folded weight is computed in float32 and cast; the
    matmul and the tap conv run in `x`'s dtype.

    Args:
        x: Input `[B, H, W, C_in]`.
        w1: First weight `[kh, kw, C_in, C_mid]` (runtime-scaled, odd kh = kw), demodulated.
        s1: First styles `[B, C_in]`.
        w2: Second weight `[1, 1, C_mid, R]` (runtime-scaled), not demodulated.
        s2: Second styles `[B, C_mid]`.

    Returns:
        `[B, H, W, R]`.
    """
    kh, kw, c_in, c_mid = w1.shape
    r = w2.shape[-1]
    shape = tf.shape(x)
    b, h, w_ = shape[0], shape[1], shape[2]
    v = (demodulation_coefficients(w1, s1) * s2)[:, :, None] * w2[0, 0][None]  # [B, C_mid, R]
    v = tf.reshape(tf.transpose(v, [1, 0, 2]), [c_mid, -1])  # [C_mid, B·R]
    wc = tf.matmul(tf.reshape(w1, [kh * kw * c_in, c_mid]), v)  # [kh·kw·C_in, B·R]
    wc = tf.transpose(tf.reshape(wc, [kh, kw, c_in, b, r]), [3, 2, 0, 1, 4])  # [B, C_in, kh, kw, R]
    wc = tf.reshape(wc, [b, c_in, kh * kw * r]) * s1[:, :, None]
    u = tf.matmul(tf.reshape(x, [b, h * w_, c_in]), tf.cast(wc, x.dtype))  # [B, H·W, kh·kw·R]
    u = tf.reshape(u, [b, h, w_, kh * kw * r])
    return tf.nn.conv2d(u, tf.constant(_tap_selector(kh, kw, r), dtype=x.dtype), strides=1, padding="SAME")


def _tap_selector(kh: int, kw: int, r: int) -> np.ndarray:
    """0/1 kernel `[kh, kw, kh·kw·R, R]` whose tap (a, b) picks input channel `(a·kw + b)·R + c` for output `c`."""
    n = kh * kw * r
    return np.eye(n, dtype=np.float32).reshape(n, kh, kw, r).transpose(1, 2, 0, 3)


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
