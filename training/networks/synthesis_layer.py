"""One synthesis layer (of `G_synthesis` in the authors' `training/networks.py`): modulated conv -> attention (l2n, then
optional n2l / l2l / n2n) -> noise -> bias + lrelu·√2; and the ToRGB head with its optional `extraLayer`.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import numpy as np
import tensorflow as tf

from dnnlib.tflib.ops.fused_bias_act import bias_act
from dnnlib.tflib.ops.modconv import modulated_conv_to_rgb
from training.config import GeneratorConfig
from training.networks.attention import AttentionBlock, AttentionLayer
from training.networks.layers import ModConv, NoiseInjection
from training.networks.module import NamedModule, constant_init


class LayerInputs(NamedTuple):
    """Per-call inputs of a synthesis layer.

    Attributes:
        w_global: `[B, d]` latent for the style modulation.
        w_local: `[B, k, d]` local latents the image attends to (None without attention).
        noise: `[B or 1, H, W, 1]` noise or None.
        grid_pos: `[H*W, D]` image positional encodings (None without positions).
        ltnt_pos: `[k, d]` latent positional embeddings (None without positions).
        mask: `[B, k]` component keep-mask or None.
        training: Enables attention dropout.
        seed: Stateless RNG seed `[2]` for dropout, or None.
    """

    w_global: tf.Tensor
    w_local: Optional[tf.Tensor] = None
    noise: Optional[tf.Tensor] = None
    grid_pos: Optional[tf.Tensor] = None
    ltnt_pos: Optional[tf.Tensor] = None
    mask: Optional[tf.Tensor] = None
    training: bool = False
    seed: Optional[tf.Tensor] = None


class SynthesisLayer(NamedModule):
    """A modulated conv layer with optional bipartite attention.

    Args:
        cfg: Generator configuration.
        rng: Initialization RNG.
        in_ch: Input channels.
        out_ch: Output channels.
        res_log2: log2 of the output resolution.
        up: Whether the conv upsamples x2.
        attend: Add the latents->image ("l2n") attention and the configured extras.

    Attributes:
        clamp: Clamp of the output activation (None: none); set by `training.precision.policy.set_precision` in
            reduced-precision blocks. The layer computes in its input's dtype, its attention in float32.
    """

    def __init__(self, cfg: GeneratorConfig, rng: np.random.Generator, in_ch: int, out_ch: int, res_log2: int,
                 up: bool, attend: bool) -> None:
        super().__init__(rng)
        att, d, k = cfg.attention, cfg.latent_dim, cfg.components_num
        pos = cfg.pos_dim if att.use_pos else None
        lpos = d if att.use_pos else None
        self.conv = self.add_child("", ModConv(rng, d, in_ch, out_ch, 3, up=up, style=cfg.style))
        self.l2n = self.n2l = self.l2l = self.n2n = None
        if attend:
            self.l2n = self.add_child("AttLayer_l2n", AttentionLayer(
                rng, out_ch, d, out_ch, att.num_heads, from_pos_dim=pos, to_pos_dim=lpos, to_len=k,
                kmeans=att.kmeans, kmeans_iters=att.kmeans_iters, norm=att.norm, integration=att.integration,
                img_gate=att.img_gate, ltnt_gate=att.ltnt_gate, dropout=att.attention_dropout))
            common = dict(num_heads=att.num_heads, integration="add", dropout=att.attention_dropout)
            if cfg.img2ltnt:
                self.n2l = self.add_child("", AttentionBlock(rng, "AttLayer_n2l", "Densen2l", d, out_ch,
                                                             from_pos_dim=lpos, to_pos_dim=pos, **common))
            if cfg.ltnt2ltnt:
                self.l2l = self.add_child("", AttentionBlock(rng, "AttLayer_l2l", "Densel2l", d, d,
                                                             from_pos_dim=lpos, to_pos_dim=lpos, **common))
        if cfg.img2img == res_log2:
            self.n2n = self.add_child("AttLayer_n2n", AttentionLayer(
                rng, out_ch, out_ch, out_ch, att.num_heads, from_pos_dim=pos, to_pos_dim=pos, integration="add",
                dropout=att.attention_dropout))
        self.noise = self.add_child("", NoiseInjection(rng)) if cfg.local_noise else None
        self.bias = self.add_var("bias", (out_ch,), constant_init(0.0))
        self.clamp: Optional[float] = None

    def __call__(self, x: tf.Tensor, inp: LayerInputs) -> tuple[tf.Tensor, Optional[tf.Tensor], Optional[tf.Tensor]]:
        """Runs the layer.

        Args:
            x: `[B, H_in, W_in, C_in]` in the layer's compute dtype.
            inp: Latents, noise, positions, mask and dropout settings.

        Returns:
            `(x', probs, new_local)`: `[B, H, W, C_out]` in `x`'s dtype, the l2n attention probabilities
            `[B, N, H*W, k]` (or None) and the updated local latents `[B, k, d]` when the image->latent update ran
            (else None).
        """
        x = self.conv(x, inp.w_global)
        probs = new_local = None
        if self.l2n is not None or self.n2n is not None:
            shape = tf.shape(x)
            dtype = x.dtype  # attention computes in float32 (softmax, norms, k-means), then casts back
            flat = tf.cast(tf.reshape(x, [shape[0], shape[1] * shape[2], x.shape[3]]), tf.float32)
            seeds = _split_seed(inp.seed, 4)
            call = dict(mask=inp.mask, training=inp.training)
            if self.l2n is not None:
                flat, probs = self.l2n(flat, inp.w_local, inp.grid_pos, inp.ltnt_pos, seed=seeds[0], **call)
                local = inp.w_local
                if self.n2l is not None:
                    local, _ = self.n2l(local, flat, x_pos=inp.ltnt_pos, y_pos=inp.grid_pos, seed=seeds[1],
                                        training=inp.training)
                if self.l2l is not None:
                    local, _ = self.l2l(local, local, x_pos=inp.ltnt_pos, y_pos=inp.ltnt_pos, seed=seeds[2], **call)
                if self.n2l is not None or self.l2l is not None:
                    new_local = local
            if self.n2n is not None:
                flat, _ = self.n2n(flat, flat, inp.grid_pos, inp.grid_pos, seed=seeds[3], training=inp.training)
            x = tf.cast(tf.reshape(flat, shape), dtype)
        if self.noise is not None:
            x = self.noise(x, inp.noise)
        return bias_act(x, self.bias, act="lrelu", clamp=self.clamp), probs, new_local


def _split_seed(seed: Optional[tf.Tensor], n: int) -> list[Optional[tf.Tensor]]:
    if seed is None:
        return [None] * n
    return list(tf.unstack(tf.random.experimental.stateless_split(seed, n)))


class ToRGB(NamedModule):
    """Modulated 1x1 conv to RGB without demodulation, plus bias; optionally preceded by the `extraLayer`.

    Args:
        cfg: Generator configuration.
        rng: Initialization RNG.
        in_ch: Input channels.
        extra: Add the modulated 3x3 `extraLayer` (no bias, noise or activation) used by the transformer models.
        fold: Run `extraLayer` + the 1x1 conv as one folded C_in -> RGB conv (`modulated_conv_to_rgb`; exact, since
            nothing non-linear sits between them) instead of the reference path that runs the C -> C conv. Both
            are tested equal.

    Attributes:
        clamp: Clamp of the RGB output (None: none); set in reduced-precision blocks. Computes in `x`'s dtype.
    """

    def __init__(self, cfg: GeneratorConfig, rng: np.random.Generator, in_ch: int, extra: bool,
                 fold: bool = True) -> None:
        super().__init__(rng)
        self.fold = fold
        d = cfg.latent_dim
        self.extra = self.add_child("extraLayer", ModConv(rng, d, in_ch, in_ch, 3, style=cfg.style)) if extra else None
        self.conv = self.add_child("", ModConv(rng, d, in_ch, cfg.num_channels, 1, demodulate=False, style=cfg.style))
        self.bias = self.add_var("bias", (cfg.num_channels,), constant_init(0.0))
        self.clamp: Optional[float] = None

    def __call__(self, x: tf.Tensor, w: tf.Tensor, w_extra: Optional[tf.Tensor] = None) -> tf.Tensor:
        """`x`: `[B, H, W, C]`; `w`, `w_extra`: `[B, d]`. Returns `[B, H, W, num_channels]` in `x`'s dtype."""
        if self.extra is None:
            return bias_act(self.conv(x, w), self.bias, clamp=self.clamp)
        if self.fold and self.extra.style and self.conv.style:
            y = modulated_conv_to_rgb(x, self.extra.weight * self.extra.coef, self.extra.styles(w_extra),
                                      self.conv.weight * self.conv.coef, self.conv.styles(w))
            return bias_act(y, self.bias, clamp=self.clamp)
        return bias_act(self.conv(self.extra(x, w_extra), w), self.bias, clamp=self.clamp)


def upsample_maps(probs: tf.Tensor, size: int, resolution: int, heads: int) -> tf.Tensor:
    """Attention probabilities `[B, N, size², k]` -> `[B, k, N, R, R]` (nearest-neighbour up-sampled)."""
    shape = tf.shape(probs)
    b, k = shape[0], probs.shape[-1]
    maps = tf.reshape(tf.transpose(probs, [0, 3, 1, 2]), [b, k, heads, size, 1, size, 1])
    f = resolution // size
    maps = tf.broadcast_to(maps, [b, k, heads, size, f, size, f])
    return tf.reshape(maps, [b, k, heads, resolution, resolution])


SQRT_HALF = math.sqrt(0.5)
