"""Mapping network z -> w (`G_mapping` of the authors' `training/networks.py`): per-component MLP for the k local
latents, a separate MLP for the global
latent, optional self-attention among the local latents (`mapping_ltnt2ltnt`), resnet variant, `mapping_dim`,
`mapping_shared_dim` and lr multiplier 0.01. Only the local latents are pixel-normalized (as the original).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf

from training.config import GeneratorConfig
from training.networks.attention import AttentionBlock
from training.networks.layers import Dense, pixel_norm
from training.networks.module import NamedModule


class MLP(NamedModule):
    """The mapping MLP applied to every latent of a `[B, T, d]` tensor.

    resnet: `layers/2` residual blocks `Dense{i}_0/_1` (each optionally preceded by latent self-attention
    `AttLayer_{i}`), then a final lrelu dense `Dense{layers/2-1}`; otherwise `layers` lrelu dense layers `Dense{i}`.

    Args:
        rng: Initialization RNG.
        dim: Width.
        layers: Number of dense layers of the plain variant (resnet: layers/2 blocks + 1).
        lrmul: Learning-rate multiplier of the dense layers.
        resnet: Residual variant.
        attention: Self-attention among latents before each residual block.
        att_kwargs: `AttentionLayer` arguments for that attention.
    """

    def __init__(self, rng: np.random.Generator, dim: int, layers: int, lrmul: float, resnet: bool,
                 attention: bool = False, **att_kwargs) -> None:
        super().__init__(rng)
        self.resnet = resnet
        self.blocks: list[NamedModule] = []
        if resnet:
            half = max(layers // 2, 1)
            for i in range(half):
                att_name = f"AttLayer_{i}" if attention else None
                self.blocks.append(self.add_child("", AttentionBlock(rng, att_name, f"Dense{i}", dim, dim,
                                                                     lrmul=lrmul, **att_kwargs)))
            self.blocks.append(self.add_child(f"Dense{half - 1}", Dense(rng, dim, dim, act="lrelu", lrmul=lrmul)))
        else:
            for i in range(layers):
                self.blocks.append(self.add_child(f"Dense{i}", Dense(rng, dim, dim, act="lrelu", lrmul=lrmul)))

    def __call__(self, x: tf.Tensor, pos: Optional[tf.Tensor] = None, mask: Optional[tf.Tensor] = None,
                 training: bool = False, seed: Optional[tf.Tensor] = None) -> tf.Tensor:
        """`x`: `[B, T, d]`; `pos`: `[T, d]`; `mask`: `[B, T]` keep-mask. Returns `[B, T, d]`."""
        for i, block in enumerate(self.blocks):
            if isinstance(block, AttentionBlock):
                block_seed = None if seed is None else seed + i
                x, _ = block(x, x, x_pos=pos, y_pos=pos, mask=mask, training=training, seed=block_seed)
            else:
                x = block(x)
        return x


class MappingNetwork(NamedModule):
    """Maps z `[B, K, d]` to w `[B, K, num_ws, d]` (the same vector broadcast to every layer slot).

    Args:
        cfg: Generator configuration.
        rng: Initialization RNG.
    """

    def __init__(self, cfg: GeneratorConfig, rng: np.random.Generator) -> None:
        super().__init__(rng)
        self.cfg = cfg
        self.ltnt_emb: Optional[tf.Variable] = None  # set by the Generator that owns the embeddings
        d, k = cfg.latent_dim, cfg.components_num
        width = cfg.mapping_dim or d
        att = cfg.attention
        use_att = cfg.mapping_ltnt2ltnt and cfg.transformer and k > 1
        att_kwargs = dict(num_heads=att.num_heads, from_pos_dim=width if att.use_pos else None,
                          to_pos_dim=width if att.use_pos else None, integration="add",
                          dropout=att.attention_dropout)
        self.label_embed = self.add_child("LabelEmbed", Dense(rng, cfg.label_dim, d)) if cfg.label_dim else None
        self.map_start = self.map_pos = self.map_end = self.inmap = self.outmap = None
        if cfg.mapping_dim:
            self.map_start = self.add_child("map_start", Dense(rng, d, width, lrmul=cfg.mapping_lrmul))
            if att.use_pos:
                self.map_pos = self.add_child("map_pos", Dense(rng, d, width, lrmul=cfg.mapping_lrmul))
        mlp_width = width
        num_local = k if cfg.transformer else cfg.num_latents
        if cfg.mapping_shared_dim:
            mlp_width = cfg.mapping_shared_dim
            self.inmap = self.add_child("inmap", Dense(rng, num_local * width, mlp_width, lrmul=cfg.mapping_lrmul))
            use_att = False
        self.local = self.add_child("", MLP(rng, mlp_width, cfg.mapping_layers, cfg.mapping_lrmul,
                                            cfg.mapping_resnet, attention=use_att, **att_kwargs))
        if cfg.mapping_shared_dim:
            self.outmap = self.add_child("outmap", Dense(rng, mlp_width, num_local * width, lrmul=cfg.mapping_lrmul))
        self.glob = None
        if cfg.transformer:
            self.glob = self.add_child("global", MLP(rng, width, cfg.mapping_layers, cfg.mapping_lrmul,
                                                     cfg.mapping_resnet))
        if cfg.mapping_dim:
            self.map_end = self.add_child("map_end", Dense(rng, width, d, lrmul=cfg.mapping_lrmul))

    def __call__(self, z: tf.Tensor, labels: Optional[tf.Tensor] = None, ltnt_pos: Optional[tf.Tensor] = None,
                 mask: Optional[tf.Tensor] = None, training: bool = False,
                 seed: Optional[tf.Tensor] = None) -> tf.Tensor:
        """Maps latents.

        Args:
            z: `[B, K, d]`; with the transformer, index K-1 is the global latent.
            labels: `[B, label_dim]` or None.
            ltnt_pos: Latent positional embeddings `[k, d]` (`ltnt_emb`), used when `use_pos`.
            mask: `[B, k]` component keep-mask (component dropout) for the latent self-attention.
            training: Enables attention dropout.
            seed: Stateless RNG seed `[2]` for the attention dropout.

        Returns:
            w `[B, K, num_ws, d]`.
        """
        cfg = self.cfg
        if ltnt_pos is None:
            ltnt_pos = self.ltnt_emb
        z = tf.cast(z, tf.float32)
        if cfg.transformer:
            local, glob = z[:, :-1], z[:, -1:]
        else:
            local, glob = z, None
        local = pixel_norm(local)
        if self.label_embed is not None:
            emb = pixel_norm(self.label_embed(tf.cast(labels, tf.float32)))[:, None, :]
            local = local + emb
            glob = None if glob is None else glob + emb
        pos = ltnt_pos if cfg.attention.use_pos else None
        if self.map_start is not None:
            local = self.map_start(local)
            glob = None if glob is None else self.map_start(glob)
            pos = None if pos is None or self.map_pos is None else self.map_pos(pos)
        local = self._local(local, pos, mask, training, seed)
        if glob is not None:
            local = tf.concat([local, self.glob(glob)], axis=1)
        if self.map_end is not None:
            local = self.map_end(local)
        return tf.tile(local[:, :, None, :], [1, 1, cfg.num_ws, 1])

    def _local(self, x: tf.Tensor, pos: Optional[tf.Tensor], mask: Optional[tf.Tensor], training: bool,
               seed: Optional[tf.Tensor]) -> tf.Tensor:
        if self.inmap is None:
            return self.local(x, pos, mask, training, seed)
        shape = tf.shape(x)
        flat = tf.reshape(x, [shape[0], 1, x.shape[1] * x.shape[2]])
        flat = self.outmap(self.local(self.inmap(flat)))
        return tf.reshape(flat, [shape[0], x.shape[1], x.shape[2]])
