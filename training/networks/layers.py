"""Equalized-learning-rate building blocks (ProGAN, Karras et al. 2018, §4.1; `get_weight` of the authors'
`training/networks.py`): dense, conv, modulated conv, noise, ToRGB.

Weights are stored as N(0, 1/lrmul²) and multiplied at run time by `gain / sqrt(fan_in) * lrmul` (fan_in = product
of all weight dims but the last); biases are stored as zeros and multiplied by `lrmul`. Layouts follow the original
checkpoints: conv weights `[kh, kw, C_in, C_out]`, dense weights `[in, out]`.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from dnnlib.tflib.ops.fused_bias_act import bias_act
from dnnlib.tflib.ops.modconv import modulated_conv_2d
from dnnlib.tflib.ops.upfirdn_2d import conv_2d
from training.networks.module import NamedModule, constant_init, normal_init


def matmul_last(x: tf.Tensor, w: tf.Tensor) -> tf.Tensor:
    """`x [..., n] · w [n, m] -> [..., m]`: what `tf.tensordot(x, w, [[-1], [0]])` computes (the same 2-D MatMul,
    hence the same values), in 3 graph ops instead of about 11 (and a smaller gradient) when at most one of x's
    leading dims is unknown."""
    if x.shape.rank == 2:
        return tf.matmul(x, w)
    if x.shape.rank is None or x.shape[-1] is None or w.shape[-1] is None:
        return tf.tensordot(x, w, axes=[[-1], [0]])
    lead = list(x.shape[:-1])
    y = tf.matmul(tf.reshape(x, [-1, x.shape[-1]]), w)
    if sum(d is None for d in lead) <= 1:
        return tf.reshape(y, [-1 if d is None else d for d in lead] + [w.shape[-1]])
    return tf.reshape(y, tf.concat([tf.shape(x)[:-1], [tf.shape(w)[-1]]], axis=0))


class Dense(NamedModule):
    """Fully connected layer `y = act(x · W·c + b·lrmul)`, applied over the last axis.

    Args:
        rng: Initialization RNG.
        in_dim: Input features.
        out_dim: Output features.
        act: Activation name (see `bias_act`).
        gain: Equalized-lr gain.
        lrmul: Learning-rate multiplier.
        use_bias: Whether the layer has a bias.
        names: Variable names of the weight and the bias (the original uses e.g. `mod_weight`, `weight_query`).
    """

    def __init__(self, rng: np.random.Generator, in_dim: int, out_dim: int, act: str = "linear", gain: float = 1.0,
                 lrmul: float = 1.0, use_bias: bool = True,
                 names: tuple[str, str] = ("weight", "bias")) -> None:
        super().__init__(rng)
        self.act, self.lrmul = act, lrmul
        self.coef = gain / math.sqrt(in_dim) * lrmul
        self.weight = self.add_var(names[0], (in_dim, out_dim), normal_init(1.0 / lrmul))
        self.bias = self.add_var(names[1], (out_dim,), constant_init(0.0)) if use_bias else None

    def effective(self) -> tuple[tf.Tensor, tf.Tensor]:
        """Run-time weight `[in, out]` and bias `[out]` (zeros without bias), equalized-lr factors applied."""
        b = tf.zeros([self.weight.shape[1]]) if self.bias is None else self.bias * self.lrmul
        return self.weight * self.coef, b

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        """`x`: `[..., in_dim]` -> `[..., out_dim]`."""
        y = matmul_last(x, self.weight * self.coef)
        b = None if self.bias is None else self.bias * self.lrmul
        return bias_act(y, b, act=self.act)


class Conv(NamedModule):
    """Equalized-lr convolution `[kh, kw, C_in, C_out]`, optionally up/down-sampling, optionally with bias + act.

    Args:
        rng: Initialization RNG.
        in_ch: Input channels.
        out_ch: Output channels.
        kernel: Spatial size (1 or 3).
        up: Upsample x2 (transposed conv + FIR).
        down: Downsample x2 (FIR + strided conv).
        act: Activation applied with the bias (ignored without bias).
        use_bias: Whether the layer has a bias.
        gain: Equalized-lr gain.

    Attributes:
        clamp: Clamp of the biased activation (None: none); set by `training.precision.policy.set_precision` for the
            layers of reduced-precision blocks. The conv runs in the input's dtype (the weight is cast to it).
    """

    def __init__(self, rng: np.random.Generator, in_ch: int, out_ch: int, kernel: int, up: bool = False,
                 down: bool = False, act: str = "linear", use_bias: bool = True, gain: float = 1.0) -> None:
        super().__init__(rng)
        self.up, self.down, self.act = up, down, act
        self.clamp: float | None = None
        self.coef = gain / math.sqrt(in_ch * kernel * kernel)
        self.weight = self.add_var("weight", (kernel, kernel, in_ch, out_ch), normal_init())
        self.bias = self.add_var("bias", (out_ch,), constant_init(0.0)) if use_bias else None

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        """`x`: `[B, H, W, C_in]` -> `[B, H', W', C_out]`."""
        x = conv_2d(x, tf.cast(self.weight * self.coef, x.dtype), up=self.up, down=self.down)
        if self.bias is not None:
            x = bias_act(x, self.bias, act=self.act, clamp=self.clamp)
        return x


class ModConv(NamedModule):
    """StyleGAN2 modulated convolution: style `s = A(w) + 1` scales the input channels (and demodulates).

    Variables: `weight [k, k, C_in, C_out]`, `mod_weight [d, C_in]`, `mod_bias [C_in]` (stored without the +1). With
    `style=False` the layer is a plain convolution, but the modulation variables still exist (checkpoint layout).

    Args:
        rng: Initialization RNG.
        w_dim: Dimension d of the latent driving the style.
        in_ch: Input channels.
        out_ch: Output channels.
        kernel: Spatial size.
        up: Upsample x2.
        demodulate: Normalize output channels (off for ToRGB).
        style: Whether modulation is used at all.
    """

    def __init__(self, rng: np.random.Generator, w_dim: int, in_ch: int, out_ch: int, kernel: int,
                 up: bool = False, demodulate: bool = True, style: bool = True) -> None:
        super().__init__(rng)
        self.up, self.demodulate, self.style = up, demodulate, style
        self.coef = 1.0 / math.sqrt(in_ch * kernel * kernel)
        self.weight = self.add_var("weight", (kernel, kernel, in_ch, out_ch), normal_init())
        self.affine = self.add_child("", Dense(rng, w_dim, in_ch, names=("mod_weight", "mod_bias")))

    def styles(self, w: tf.Tensor) -> tf.Tensor:
        """`w`: `[B, d]` -> styles `[B, C_in]` (including the +1)."""
        return self.affine(w) + 1.0

    def __call__(self, x: tf.Tensor, w: tf.Tensor | None) -> tf.Tensor:
        """`x`: `[B, H, W, C_in]`, `w`: `[B, d]` -> `[B, H', W', C_out]`."""
        s = self.styles(w) if self.style else None
        return modulated_conv_2d(x, self.weight * self.coef, s, demodulate=self.demodulate, up=self.up)


class NoiseInjection(NamedModule):
    """Adds `noise_strength · n` with per-pixel noise `n` shared over channels.

    Args:
        rng: Initialization RNG.
    """

    def __init__(self, rng: np.random.Generator) -> None:
        super().__init__(rng)
        self.strength = self.add_var("noise_strength", (), constant_init(0.0))

    def __call__(self, x: tf.Tensor, noise: tf.Tensor | None) -> tf.Tensor:
        """`x`: `[B, H, W, C]`; `noise`: `[B or 1, H, W, 1]` or None (no noise)."""
        if noise is None:
            return x
        return x + tf.cast(noise, x.dtype) * tf.cast(self.strength, x.dtype)


def pixel_norm(x: tf.Tensor, axis: int = -1, eps: float = 1e-8) -> tf.Tensor:
    """`x / sqrt(mean(x², axis) + eps)`."""
    return x * tf.math.rsqrt(tf.reduce_mean(tf.square(x), axis=axis, keepdims=True) + eps)


def channels(res_log2: int, channel_base: int, channel_max: int) -> int:
    """Feature maps at log2-resolution r: `min(channel_base / 2^(r-1), channel_max)` (at least 1)."""
    return max(min(int(channel_base / 2.0 ** (res_log2 - 1)), channel_max), 1)
