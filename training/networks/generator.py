"""Generator wrapper (`Generator` of the authors' `training/networks.py`): mapping + synthesis, w_avg tracking,
truncation, style mixing, component mixing and component dropout. Owns the latent positional embeddings `ltnt_emb/emb`.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf

from training.config import GeneratorConfig
from dnnlib.crop import crop_to_content
from training.networks.mapping import MappingNetwork
from training.networks.module import NamedModule, constant_init, normal_init, uniform_init
from training.networks.synthesis import SynthesisNetwork


class Generator(NamedModule):
    """GANformer / StyleGAN2 / GAN / SAGAN / k-GAN generator.

    Call: `G(z, labels=None, truncation_psi=1.0, noise_mode="const", return_maps=False)` -> images `[B, R, R, C]`
    (content rows only when `crop_ratio` is set), or `(images, maps)`; maps `[B, k, n_att_layers, heads, R, R]`.

    Args:
        cfg: Validated generator configuration.
        seed: Seed of the initial weights.
    """

    def __init__(self, cfg: GeneratorConfig, seed: int = 0) -> None:
        super().__init__(np.random.default_rng(seed))
        self.cfg = cfg.validate()
        rng = self._rng
        init = uniform_init() if cfg.attention.pos_init == "uniform" else normal_init()
        self.ltnt_emb = self.add_var("ltnt_emb/emb", (cfg.components_num, cfg.latent_dim), init)
        self.w_avg = self.add_var("dlatent_avg", (cfg.latent_dim,), constant_init(0.0), trainable=False)
        self.synthesis = self.add_child("synthesis", SynthesisNetwork(cfg, rng))
        self.mapping = self.add_child("mapping", MappingNetwork(cfg, rng))
        self.synthesis.ltnt_emb = self.ltnt_emb
        self.mapping.ltnt_emb = self.ltnt_emb

    @property
    def latent_shape(self) -> tuple[int, int]:
        """(K, d): shape of one z."""
        return self.cfg.num_latents, self.cfg.latent_dim

    @property
    def resolution(self) -> int:
        """Output resolution R."""
        return self.cfg.resolution

    @property
    def label_dim(self) -> int:
        """Number of label dimensions (0: unconditional)."""
        return self.cfg.label_dim

    @property
    def num_ws(self) -> int:
        """Number of w slots."""
        return self.cfg.num_ws

    @property
    def num_attention_layers(self) -> int:
        """Number of attention maps per image."""
        return self.synthesis.num_attention_layers

    def component_mask(self, batch: tf.Tensor, rate: float, seed: Optional[tf.Tensor]) -> Optional[tf.Tensor]:
        """Component-dropout keep-mask `[B, k]` (None when `rate` is 0)."""
        if rate <= 0 or not self.cfg.transformer:
            return None
        shape = tf.stack([batch, self.cfg.components_num])
        u = tf.random.uniform(shape) if seed is None else tf.random.stateless_uniform(shape, seed)
        return tf.cast(u >= rate, tf.float32)

    def truncate(self, ws: tf.Tensor, psi: float | tf.Tensor) -> tf.Tensor:
        """`w_avg + psi (w - w_avg)` for every slot and component. `ws`: `[B, K, S, d]`."""
        return self.w_avg + tf.cast(psi, ws.dtype) * (ws - self.w_avg)

    def update_w_avg(self, batch_mean: tf.Tensor) -> None:
        """Tracks the average w: `avg <- lerp(batch_mean, avg, beta)`; `batch_mean` `[d]` is the mean of
        `w[:, :, 0]` over the batch and all K components (one shared vector, as the original)."""
        self.w_avg.assign(batch_mean + self.cfg.w_avg_beta * (self.w_avg - batch_mean))

    def mix(self, ws: tf.Tensor, ws2: tf.Tensor, prob: float, axis: int, seed: Optional[tf.Tensor]) -> tf.Tensor:
        """Replaces slots (axis 2) or components (axis 1) >= a random cutoff by `ws2`, with probability `prob`.

        The cutoff is U{1, n-1} with probability `prob`, else n (no mixing); one cutoff per batch, as the original.
        """
        n = ws.shape[axis] - (1 if axis == 1 and self.cfg.transformer else 0)
        if prob <= 0 or n < 2:
            return ws
        if seed is None:
            u = tf.random.uniform([])
            cut = tf.random.uniform([], 1, n, dtype=tf.int32)
        else:
            seeds = tf.random.experimental.stateless_split(seed, 2)
            u = tf.random.stateless_uniform([], seeds[0])
            cut = tf.random.stateless_uniform([], seeds[1], 1, n, dtype=tf.int32)
        cut = tf.where(u < prob, cut, n)
        idx = tf.range(ws.shape[axis])
        take2 = (idx >= cut) & (idx < n)
        shape = [1, 1, 1, 1]
        shape[axis] = ws.shape[axis]
        return tf.where(tf.reshape(take2, shape), ws2, ws)

    def __call__(self, z: tf.Tensor, labels: Optional[tf.Tensor] = None, truncation_psi: float | tf.Tensor = 1.0,
                 noise_mode: str = "const", return_maps: bool = False, return_ws: bool = False,
                 training: bool = False, seed: Optional[tf.Tensor] = None):
        """Generates images from z `[B, K, d]` (see class docstring).

        In training (`training=True`): style mixing, component mixing and component dropout with the configured
        probabilities, attention dropout, no truncation. `seed` (`[2]` int) makes all of it stateless/reproducible.
        With `return_ws`, the (truncated) ws `[B, K, S, d]` are appended to the outputs.
        """
        cfg = self.cfg
        seeds = [None] * 6 if seed is None else list(tf.unstack(tf.random.experimental.stateless_split(seed, 6)))
        batch = tf.shape(z)[0]
        mask = self.component_mask(batch, cfg.component_dropout, seeds[0]) if training else None
        ws = self.mapping(z, labels, mask=mask, training=training, seed=seeds[1])
        if training and (cfg.style_mixing > 0 or cfg.component_mixing > 0):
            z2 = tf.random.normal(tf.shape(z)) if seeds[2] is None else tf.random.stateless_normal(tf.shape(z), seeds[2])
            ws2 = self.mapping(z2, labels, mask=mask, training=training, seed=seeds[1])
            ws = self.mix(ws, ws2, cfg.style_mixing, 2, seeds[3])
            ws = self.mix(ws, ws2, cfg.component_mixing, 1, seeds[4])
        if not training and not (isinstance(truncation_psi, (int, float)) and truncation_psi == 1):
            ws = self.truncate(ws, truncation_psi)
        images, maps = self.synthesis(ws, noise_mode=noise_mode, mask=mask, training=training, seed=seeds[5],
                                      return_maps=True) if return_maps else (self.synthesis(
            ws, noise_mode=noise_mode, mask=mask, training=training, seed=seeds[5]), None)
        images = crop_to_content(images, cfg.crop_ratio)
        if maps is not None:
            maps = crop_to_content(maps, cfg.crop_ratio, axes=(4, 5))
        out = [images]
        if return_maps:
            out.append(maps)
        if return_ws:
            out.append(ws)
        return out[0] if len(out) == 1 else tuple(out)

