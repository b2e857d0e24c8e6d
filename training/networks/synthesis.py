"""Synthesis network w -> image (`G_synthesis` of the authors' `training/networks.py`): const or latent-stem input,
`orig`/`skip`/`resnet` architectures,
global style modulation, per-layer noise, bipartite attention on log2-resolutions [start_res, end_res), the extra
layer before ToRGB, k-GAN component merging. NHWC inside.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import tensorflow as tf

from dnnlib.tflib.ops.fused_bias_act import bias_act
from dnnlib.tflib.ops.upfirdn_2d import DEFAULT_KERNEL, upsample_2d
from training.config import GeneratorConfig
from training.networks.kgan import ComponentMerge
from training.networks.layers import Conv, Dense, NoiseInjection, channels
from training.networks.module import NamedModule, constant_init, normal_init
from training.networks.positional import GridEncoding
from training.networks.synthesis_layer import SQRT_HALF, LayerInputs, SynthesisLayer, ToRGB, upsample_maps
from training.precision.policy import FP32, LayerPrecision, to_float32

NOISE_MODES = ("const", "random", "none")


def noise_resolution_log2(layer_idx: int) -> int:
    """log2 resolution of the noise buffer of conv layer `layer_idx` (0: 4x4, 1-2: 8x8, 3-4: 16x16, ...)."""
    return (layer_idx + 5) // 2


class Block(NamedModule):
    """One resolution block `{R}x{R}`: `Conv0_up`, `Conv1`, and the resnet `Skip` or the skip-arch `ToRGB`.

    Attributes:
        precision: Compute dtype and activation clamp of the block (`training.precision.policy`; float32 by default).
    """

    def __init__(self, cfg: GeneratorConfig, rng: np.random.Generator, r: int, in_ch: int, out_ch: int) -> None:
        super().__init__(rng)
        attend = cfg.transformer and cfg.start_res <= r < cfg.end_res
        self.conv0 = self.add_child("Conv0_up", SynthesisLayer(cfg, rng, in_ch, out_ch, r, up=True, attend=attend))
        self.conv1 = self.add_child("Conv1", SynthesisLayer(cfg, rng, out_ch, out_ch, r, up=False, attend=attend))
        self.skip = None
        if cfg.architecture == "resnet":
            self.skip = self.add_child("Skip", Conv(rng, in_ch, out_ch, 1, up=True, use_bias=False))
        self.precision: LayerPrecision = FP32


class SynthesisNetwork(NamedModule):
    """Generates images `[B, R, R, C]` from w `[B, K, num_ws, d]`.

    Args:
        cfg: Generator configuration.
        rng: Initialization RNG.
    """

    def __init__(self, cfg: GeneratorConfig, rng: np.random.Generator) -> None:
        super().__init__(rng)
        self.cfg = cfg
        self.ltnt_emb: Optional[tf.Variable] = None  # set by the Generator that owns the embeddings
        L = cfg.res_log2
        ch = lambda r: channels(r, cfg.channel_base, cfg.channel_max)  # noqa: E731
        self.merge_res = (cfg.merge_layer if cfg.merge_layer >= 0 else L) if cfg.kgan else 0
        lead = cfg.components_num if cfg.kgan else 1
        self.noise_bufs = []
        for i in range(2 * L - 2):
            r = noise_resolution_log2(i)
            shape = (lead if r <= self.merge_res else 1, 2 ** r, 2 ** r, 1)
            self.noise_bufs.append(self.add_var(f"noise{i}", shape, normal_init(), trainable=False))
        self.stem = self.stem_noise = self.stem_bias = self.const = None
        if cfg.latent_stem:
            self.stem = self.add_child("4x4/Dense", Dense(rng, cfg.latent_dim, ch(2) * 16, gain=math.sqrt(2) / 4,
                                                          use_bias=False))
            self.stem_noise = self.add_child("4x4/Dense", NoiseInjection(rng)) if cfg.local_noise else None
            self.stem_bias = self.add_child("4x4/Dense", _Bias(rng, ch(2)))
        else:
            self.const = self.add_var("4x4/Const/const", (lead, 4, 4, ch(2)), normal_init())
        attend4 = cfg.transformer and cfg.start_res <= 2 < cfg.end_res
        self.conv4 = self.add_child("4x4/Conv", SynthesisLayer(cfg, rng, ch(2), ch(2), 2, up=False, attend=attend4))
        skip_rgb = cfg.architecture == "skip"
        extra = cfg.transformer and L <= cfg.end_res
        self.torgb: dict[int, ToRGB] = {}
        if skip_rgb:
            self.torgb[2] = self.add_child("4x4/ToRGB", ToRGB(cfg, rng, ch(2), extra=extra and L == 2))
        self.blocks: dict[int, Block] = {}
        for r in range(3, L + 1):
            self.blocks[r] = self.add_child(f"{2 ** r}x{2 ** r}", Block(cfg, rng, r, ch(r - 1), ch(r)))
            if skip_rgb or r == L:
                self.torgb[r] = self.add_child(f"{2 ** r}x{2 ** r}/ToRGB", ToRGB(cfg, rng, ch(r), extra=extra and r == L))
        if L == 2 and not skip_rgb:
            self.torgb[2] = self.add_child("4x4/ToRGB", ToRGB(cfg, rng, ch(2), extra=extra))
        self.merge = None
        if cfg.kgan:
            self.merge = self.add_child(f"merge{self.merge_res}", ComponentMerge(
                rng, ch(self.merge_res), cfg.merge_type, cfg.merge_same))
        self.grid_pos: dict[int, GridEncoding] = {}
        att = cfg.attention
        if att.use_pos:
            for r in range(2, L + 1):
                if self._attends(r):
                    self.grid_pos[r] = self.add_child(f"pos_emb{2 ** r}", GridEncoding(
                        rng, 2 ** r, cfg.pos_dim, att.pos_type, att.pos_directions_num, att.pos_init))

    def set_block_precision(self, r: int, precision: LayerPrecision) -> None:
        """Sets the compute dtype and activation clamp of block `r` (log2 resolution >= 3) and its ToRGB."""
        block = self.blocks[r]
        block.precision = precision
        block.conv0.clamp = block.conv1.clamp = precision.clamp
        if r in self.torgb:
            self.torgb[r].clamp = precision.clamp

    def _attends(self, r: int) -> bool:
        cfg = self.cfg
        return (cfg.transformer and cfg.start_res <= r < cfg.end_res) or cfg.img2img == r

    @property
    def num_attention_layers(self) -> int:
        """Number of latent->image attention layers (each contributes one attention map)."""
        cfg = self.cfg
        if not cfg.transformer:
            return 0
        return sum((2 if r > 2 else 1) for r in range(2, cfg.res_log2 + 1) if cfg.start_res <= r < cfg.end_res)

    def _noise(self, idx: int, batch: tf.Tensor, mode: str, seed: Optional[tf.Tensor]) -> Optional[tf.Tensor]:
        if mode == "none" or not self.cfg.local_noise:
            return None
        buf = self.noise_bufs[idx]
        if mode == "const":
            if buf.shape[0] > 1:
                return tf.tile(buf, [batch // buf.shape[0], 1, 1, 1])
            return buf
        shape = [batch, buf.shape[1], buf.shape[2], 1]
        if seed is None:
            return tf.random.normal(shape)
        return tf.random.stateless_normal(shape, tf.random.experimental.stateless_fold_in(seed, idx))

    def __call__(self, ws: tf.Tensor, ltnt_pos: Optional[tf.Tensor] = None, noise_mode: str = "const",
                 mask: Optional[tf.Tensor] = None, training: bool = False, seed: Optional[tf.Tensor] = None,
                 return_maps: bool = False) -> tuple[tf.Tensor, Optional[tf.Tensor]]:
        """Synthesizes images.

        Args:
            ws: `[B, K, num_ws, d]`; with the transformer, index K-1 is the global latent.
            ltnt_pos: `[k, d]` latent positional embeddings (`ltnt_emb`).
            noise_mode: `const` (stored buffers), `random` or `none`.
            mask: `[B, k]` component keep-mask.
            training: Enables attention dropout.
            seed: Stateless RNG seed `[2]` for noise and dropout (None: stateful RNG).
            return_maps: Also return attention maps.

        Returns:
            images `[B, R, R, C]` (float32 whatever the blocks' precision), or `(images, maps)` with maps
            `[B, k, n_att_layers, heads, R, R]` (None without attention) when `return_maps`.
        """
        if ltnt_pos is None and self.ltnt_emb is not None:
            ltnt_pos = self.ltnt_emb
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        state = _SynthesisState(self, ws, ltnt_pos, noise_mode, mask, training, seed, return_maps)
        x = self._input(state)
        x = state.layer(self.conv4, x, 1, 0)
        y = self.torgb[2](x, state.w_global(2)) if self.cfg.architecture == "skip" else None
        for r in range(3, self.cfg.res_log2 + 1):
            x, y = self._block(state, r, x, y)
        if self.cfg.architecture != "skip":
            y = to_float32(self.torgb[self.cfg.res_log2](x, state.w_global(2 * self.cfg.res_log2 - 2),
                                                         state.w_global(2 * self.cfg.res_log2 - 3)))
        if state.kgan_active:
            x, y = state.merge_now(x, y)
        if self.cfg.tanh:
            y = tf.tanh(y)
        return (y, state.stacked_maps()) if return_maps else y

    def _input(self, state: "_SynthesisState") -> tf.Tensor:
        if self.const is not None:
            c = self.const[None]  # [1, lead, 4, 4, C]
            x = tf.tile(c, [state.batch, 1, 1, 1, 1])
            return tf.reshape(x, [-1, 4, 4, self.const.shape[-1]])
        ch = self.stem.weight.shape[1] // 16
        x = tf.reshape(self.stem(state.w_global(0)), [-1, ch, 4, 4])
        x = tf.transpose(x, [0, 2, 3, 1])
        if self.stem_noise is not None:
            x = self.stem_noise(x, state.noise(0))
        return bias_act(x, self.stem_bias.bias, act="lrelu")

    def _block(self, state: "_SynthesisState", r: int, x: tf.Tensor,
               y: Optional[tf.Tensor]) -> tuple[tf.Tensor, Optional[tf.Tensor]]:
        block = self.blocks[r]
        x = tf.cast(x, block.precision.dtype)
        t = x
        x = state.layer(block.conv0, x, 2 * r - 4, 2 * r - 5)
        x = state.layer(block.conv1, x, 2 * r - 3, 2 * r - 4)
        if block.skip is not None:
            x = (x + block.skip(t)) * SQRT_HALF
        if self.cfg.architecture == "skip":
            extra_w = state.w_global(2 * r - 3) if r == self.cfg.res_log2 else None
            # The running RGB image is up-sampled with the [1, 3, 3, 1] FIR filter, as the original's `skip` G (not
            # nearest neighbour, `upsample_2d`'s default): the authors' stylegan2-legacy-32 fixture pins this.
            y = upsample_2d(y, DEFAULT_KERNEL) + to_float32(self.torgb[r](x, state.w_global(2 * r - 2), extra_w))
        if state.kgan_active and r == self.merge_res and r < self.cfg.res_log2:
            x, y = state.merge_now(x, y)
        return x, y


class _Bias(NamedModule):
    def __init__(self, rng: np.random.Generator, ch: int) -> None:
        super().__init__(rng)
        self.bias = self.add_var("bias", (ch,), constant_init(0.0))


class _SynthesisState:
    """Per-call bookkeeping of the synthesis pass: latents per slot, noise, positions, maps, k-GAN merge state."""

    def __init__(self, net: SynthesisNetwork, ws: tf.Tensor, ltnt_pos: Optional[tf.Tensor], noise_mode: str,
                 mask: Optional[tf.Tensor], training: bool, seed: Optional[tf.Tensor], return_maps: bool) -> None:
        self.net, self.cfg = net, net.cfg
        self.ws = tf.cast(ws, tf.float32)
        self.batch = tf.shape(ws)[0]
        self.ltnt_pos = ltnt_pos if self.cfg.attention.use_pos else None
        self.noise_mode, self.mask, self.training, self.seed = noise_mode, mask, training, seed
        self.return_maps = return_maps
        self.kgan_active = bool(self.cfg.kgan)
        self.merged_ws: Optional[tf.Tensor] = None
        self.local_override: Optional[tf.Tensor] = None
        self.maps: list[tf.Tensor] = []

    def current_batch(self) -> tf.Tensor:
        """Batch size of the feature maps right now (B·k before a k-GAN merge)."""
        return self.batch * self.cfg.components_num if self.kgan_active else self.batch

    def w_global(self, slot: int) -> tf.Tensor:
        """Latent `[B, d]` (or `[B·k, d]` before a k-GAN merge) modulating the layer of `slot`."""
        if self.kgan_active:
            return tf.reshape(self.ws[:, :, slot], [-1, self.ws.shape[-1]])
        if self.merged_ws is not None:
            return self.merged_ws[:, slot]
        return self.ws[:, -1, slot]

    def w_local(self, slot: int) -> Optional[tf.Tensor]:
        """Local latents `[B, k, d]` the image attends to at `slot` (None without the transformer)."""
        if not self.cfg.transformer:
            return None
        if self.local_override is not None:
            return self.local_override
        return self.ws[:, :-1, slot]

    def noise(self, idx: int) -> Optional[tf.Tensor]:
        """Noise for conv layer `idx` under the current noise mode."""
        seed = None if self.seed is None else tf.random.experimental.stateless_fold_in(self.seed, 1000 + idx)
        return self.net._noise(idx, self.current_batch(), self.noise_mode, seed)

    def layer(self, module: SynthesisLayer, x: tf.Tensor, slot: int, noise_idx: int) -> tf.Tensor:
        """Runs one synthesis layer and records its attention map and latent updates."""
        r = noise_resolution_log2(noise_idx)
        enc = self.net.grid_pos.get(r)
        seed = None if self.seed is None else tf.random.experimental.stateless_fold_in(self.seed, noise_idx)
        inp = LayerInputs(w_global=self.w_global(slot), w_local=self.w_local(slot), noise=self.noise(noise_idx),
                          grid_pos=None if enc is None else enc(), ltnt_pos=self.ltnt_pos, mask=self.mask,
                          training=self.training, seed=seed)
        x, probs, new_local = module(x, inp)
        if new_local is not None:
            self.local_override = new_local
        if probs is not None and self.return_maps:
            self.maps.append(upsample_maps(probs, 2 ** r, self.cfg.resolution, self.cfg.attention.num_heads))
        return x

    def merge_now(self, x: tf.Tensor, y: Optional[tf.Tensor]) -> tuple[tf.Tensor, Optional[tf.Tensor]]:
        """Merges the k parallel k-GAN images (features, RGB and latents) into one per sample (in float32)."""
        x, y, self.merged_ws = self.net.merge(to_float32(x), to_float32(y), self.ws)
        self.kgan_active = False
        return x, y

    def stacked_maps(self) -> Optional[tf.Tensor]:
        """`[B, k, n_layers, heads, R, R]` or None."""
        if not self.maps:
            return None
        return tf.stack(self.maps, axis=2)
