"""Discriminator (`Discriminator` of the authors' `training/networks.py`): `resnet` / `skip` / `orig` architectures,
minibatch stddev, labels (projection onto
the label vector, as the original), and the optional aggregator attention (`--d-transformer`).
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import tensorflow as tf

from dnnlib.tflib.ops.modconv import minibatch_stddev
from dnnlib.tflib.ops.upfirdn_2d import DEFAULT_KERNEL, downsample_2d
from training.config import DiscriminatorConfig
from training.networks.attention import AttentionBlock, AttentionLayer
from training.networks.layers import Conv, Dense, channels
from training.networks.module import NamedModule, normal_init, uniform_init
from training.networks.positional import GridEncoding
from training.precision.policy import FP32, LayerPrecision, to_float32

SQRT_HALF = math.sqrt(0.5)


class DBlock(NamedModule):
    """Block `{R}x{R}`: optional attention, `Conv0`, `Conv1_down`, resnet `Skip`.

    Attributes:
        precision: Compute dtype and activation clamp of the block and its FromRGB (float32 by default).
    """

    def __init__(self, cfg: DiscriminatorConfig, rng: np.random.Generator, r: int, ch: int, ch_next: int) -> None:
        super().__init__(rng)
        att, a_dim = cfg.attention, cfg.latent_dim
        pos = a_dim if att.use_pos else None
        self.n2l = self.l2l = self.n2n = None
        if cfg.transformer and cfg.start_res <= r < cfg.end_res:
            common = dict(num_heads=att.num_heads, integration="add", dropout=att.attention_dropout)
            self.n2l = self.add_child("", AttentionBlock(rng, "AttLayer_n2l", "Densen2l", a_dim, ch, from_pos_dim=pos,
                                                         to_pos_dim=pos, **common))
            if cfg.ltnt2ltnt:
                self.l2l = self.add_child("", AttentionBlock(rng, "AttLayer_l2l", "Densel2l", a_dim, a_dim,
                                                             from_pos_dim=pos, to_pos_dim=pos, **common))
        if cfg.img2img == r:
            self.n2n = self.add_child("AttLayer_n2n", AttentionLayer(rng, ch, ch, ch, att.num_heads, from_pos_dim=pos,
                                                                     to_pos_dim=pos, integration="add",
                                                                     dropout=att.attention_dropout))
        self.conv0 = self.add_child("Conv0", Conv(rng, ch, ch, 3, act="lrelu"))
        self.conv1 = self.add_child("Conv1_down", Conv(rng, ch, ch_next, 3, down=True, act="lrelu"))
        self.skip = None
        if cfg.architecture == "resnet":
            self.skip = self.add_child("Skip", Conv(rng, ch, ch_next, 1, down=True, use_bias=False))
        self.precision: LayerPrecision = FP32


class Discriminator(NamedModule):
    """Scores images: `D(images [B, H, W, C], labels=None)` -> logits `[B, 1]`.

    Args:
        cfg: Validated discriminator configuration.
        seed: Seed of the initial weights.
    """

    def __init__(self, cfg: DiscriminatorConfig, seed: int = 0) -> None:
        super().__init__(np.random.default_rng(seed))
        self.cfg = cfg.validate()
        rng, L = self._rng, cfg.res_log2
        att = cfg.attention
        ch = lambda r: channels(r, cfg.channel_base, cfg.channel_max)  # noqa: E731
        pos_init = uniform_init() if att.pos_init == "uniform" else normal_init()
        self.ltnt_emb = self.add_var("ltnt_emb/emb", (cfg.components_num, cfg.latent_dim), pos_init) \
            if att.use_pos else None
        self.aggregators = None
        if cfg.transformer:
            self.aggregators = self.add_var("aggregators", (cfg.components_num, cfg.latent_dim), uniform_init())
        self.fromrgb: dict[int, Conv] = {}
        self.blocks: dict[int, DBlock] = {}
        self.grid_pos: dict[int, GridEncoding] = {}
        for r in range(L, 2, -1):
            name = f"{2 ** r}x{2 ** r}"
            if r == L or cfg.architecture == "skip":
                self.fromrgb[r] = self.add_child(f"{name}/FromRGB", Conv(rng, cfg.num_channels, ch(r), 1, act="lrelu"))
            self.blocks[r] = self.add_child(name, DBlock(cfg, rng, r, ch(r), ch(r - 1)))
            if att.use_pos and (self.blocks[r].n2l is not None or self.blocks[r].n2n is not None):
                self.grid_pos[r] = self.add_child(f"pos_emb{2 ** r}", GridEncoding(
                    rng, 2 ** r, cfg.latent_dim, att.pos_type, att.pos_directions_num, att.pos_init))
        if L == 2 or cfg.architecture == "skip":
            self.fromrgb[2] = self.add_child("4x4/FromRGB", Conv(rng, cfg.num_channels, ch(2), 1, act="lrelu"))
        mbstd = cfg.mbstd_num_channels if cfg.mbstd_group_size > 1 else 0
        self.conv4 = self.add_child("4x4/Conv", Conv(rng, ch(2) + mbstd, ch(2), 3, act="lrelu"))
        self.dense4 = self.add_child("4x4/Dense0", Dense(rng, ch(2) * 16, ch(2), act="lrelu"))
        extra = 0
        if cfg.transformer:
            self.score0 = self.add_child("ComponentScores/Dense0", Dense(rng, cfg.latent_dim + 1, cfg.latent_dim,
                                                                          act="lrelu"))
            self.score1 = self.add_child("ComponentScores/Dense1", Dense(rng, cfg.latent_dim, 1))
            extra = cfg.components_num
        self.output = self.add_child("Output", Dense(rng, ch(2) + extra, max(cfg.label_dim, 1)))

    def set_block_precision(self, r: int, precision: LayerPrecision) -> None:
        """Sets the compute dtype and activation clamp of block `r` (log2 resolution >= 3) and its FromRGB."""
        block = self.blocks[r]
        block.precision = precision
        block.conv0.clamp = block.conv1.clamp = precision.clamp
        if r in self.fromrgb:
            self.fromrgb[r].clamp = precision.clamp

    def __call__(self, images: tf.Tensor, labels: Optional[tf.Tensor] = None, training: bool = False,
                 seed: Optional[tf.Tensor] = None) -> tf.Tensor:
        """Scores images.

        Args:
            images: `[B, H, W, C]` in about [-1, 1]; `H` may be the cropped content height (`crop_ratio`).
            labels: `[B, label_dim]` (conditional models only).
            training: Enables attention dropout.
            seed: Stateless RNG seed `[2]` for dropout.

        Returns:
            Logits `[B, 1]` (float32 whatever the blocks' precision).
        """
        cfg = self.cfg
        img = _pad_rows(tf.cast(images, tf.float32), cfg.resolution)
        x = None
        agg = None
        if self.aggregators is not None:
            agg = tf.tile(self.aggregators[None], [tf.shape(img)[0], 1, 1])
        for r in range(cfg.res_log2, 2, -1):
            if r in self.fromrgb:
                dtype = self.blocks[r].precision.dtype
                t = self.fromrgb[r](tf.cast(img, dtype))
                x = t if x is None else tf.cast(x, dtype) + t
            x, agg = self._block(r, x, agg, training, seed)
            if cfg.architecture == "skip":  # FIR [1, 3, 3, 1] as the original (not `downsample_2d`'s box filter)
                img = downsample_2d(img, DEFAULT_KERNEL)
        x = to_float32(x)  # the 4x4 epilogue computes in float32
        if 2 in self.fromrgb:
            t = self.fromrgb[2](img)
            x = t if x is None else x + t
        if cfg.mbstd_group_size > 1:
            x = minibatch_stddev(x, cfg.mbstd_group_size, cfg.mbstd_num_channels)
        x = self.conv4(x)
        x = tf.reshape(tf.transpose(x, [0, 3, 1, 2]), [tf.shape(x)[0], -1])  # NCHW flatten, as the original
        x = self.dense4(x)
        if agg is not None:
            x = tf.concat([x, self._component_scores(agg)], axis=1)
        out = self.output(x)
        if cfg.label_dim:
            out = tf.reduce_sum(out * tf.cast(labels, out.dtype), axis=1, keepdims=True)
        return out

    def _block(self, r: int, x: tf.Tensor, agg: Optional[tf.Tensor], training: bool,
               seed: Optional[tf.Tensor]) -> tuple[tf.Tensor, Optional[tf.Tensor]]:
        block = self.blocks[r]
        x = tf.cast(x, block.precision.dtype)
        if block.n2l is not None or block.n2n is not None:
            shape = tf.shape(x)  # attention computes in float32 (softmax, norms), then casts back
            flat = tf.cast(tf.reshape(x, [shape[0], shape[1] * shape[2], x.shape[3]]), tf.float32)
            gpos = self.grid_pos[r]() if r in self.grid_pos else None
            lpos = self.ltnt_emb
            s = None if seed is None else tf.random.experimental.stateless_fold_in(seed, r)
            if block.n2l is not None:
                agg, _ = block.n2l(agg, flat, x_pos=lpos, y_pos=gpos, training=training, seed=s)
            if block.l2l is not None:
                agg, _ = block.l2l(agg, agg, x_pos=lpos, y_pos=lpos, training=training, seed=s)
            if block.n2n is not None:
                flat, _ = block.n2n(flat, flat, gpos, gpos, training=training, seed=s)
                x = tf.cast(tf.reshape(flat, shape), block.precision.dtype)
        t = x
        x = block.conv1(block.conv0(x))
        if block.skip is not None:
            x = (x + block.skip(t)) * SQRT_HALF
        return x, agg

    def _component_scores(self, agg: tf.Tensor) -> tf.Tensor:
        """Per-aggregator scores `[B, k]` from `agg` `[B, k, a]` (with a minibatch-stddev feature)."""
        a = minibatch_stddev(agg[:, :, None, :], self.cfg.mbstd_group_size, 1)[:, :, 0, :]  # [B, k, a+1]
        return self.score1(self.score0(a))[:, :, 0]


def _pad_rows(x: tf.Tensor, resolution: int) -> tf.Tensor:
    """Zero-pads cropped (non-square) images `[B, h, W, C]` back to `[B, W, W, C]`, content centred."""
    h = x.shape[1]
    if h is None or h == resolution:
        return x
    top = (resolution - h) // 2
    return tf.pad(x, [[0, 0], [top, resolution - h - top], [0, 0], [0, 0]])
