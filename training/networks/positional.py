"""Positional encodings of the image grid and of the latents (`get_positional_encoding` and `get_embeddings` of the
authors' `training/networks.py`).

Image-grid encodings are `[H*W, D]`, flattened row-major (index `y*W + x`) to match the `[B, H*W, C]` feature
layout of the attention layers. Coordinates are `c = linspace(-1, 1, S)`.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from training.networks.module import NamedModule, normal_init, uniform_init


def sinusoidal_grid(size: int, dim: int, directions: int = 2) -> np.ndarray:
    """Fixed sinusoidal encodings of a `size x size` grid.

    With 2 directions: `[sin(x·ω), cos(x·ω), sin(y·ω), cos(y·ω)]`, `ω_i = 10000^(-4i/D)`, `i < D/4`. With n
    directions `θ_j = jπ/n`: `ℓ_j = x cos θ_j + y sin θ_j`, `ω_i = 10000^(-2n·i/D)`, `[sin(ℓ_j ω), cos(ℓ_j ω)]` per j.

    Returns:
        float32 `[size*size, dim]`.
    """
    coords = np.linspace(-1.0, 1.0, size)
    ys, xs = np.meshgrid(coords, coords, indexing="ij")
    xs, ys = xs.reshape(-1), ys.reshape(-1)
    per_dir = dim // (2 * directions)
    freqs = 10000.0 ** (-2.0 * directions * np.arange(per_dir) / dim)
    parts = []
    for j in range(directions):
        if directions == 2:
            proj = xs if j == 0 else ys
        else:
            theta = j * math.pi / directions
            proj = xs * math.cos(theta) + ys * math.sin(theta)
        ang = proj[:, None] * freqs[None, :]
        parts += [np.sin(ang), np.cos(ang)]
    enc = np.concatenate(parts, axis=1)
    if enc.shape[1] < dim:
        enc = np.pad(enc, [[0, 0], [0, dim - enc.shape[1]]])
    return enc.astype(np.float32)


class GridEncoding(NamedModule):
    """Positional encoding of one grid size, `[S*S, D]`, of type sinus / linear / trainable / trainable2d.

    Args:
        rng: Initialization RNG.
        size: Grid side S.
        dim: Encoding dimension D.
        pos_type: `sinus` (fixed), `linear` (`ℓ_j · e_j`, trainable `e [n, D/n]`), `trainable` (`[x_emb[x],
            y_emb[y]]`, each `[S, D/2]`) or `trainable2d` (free `[S, S, D]`).
        directions: Number of directions n for sinus/linear.
        init: `uniform` (U[0,1)) or `normal` for trainable encodings.
    """

    def __init__(self, rng: np.random.Generator, size: int, dim: int, pos_type: str = "sinus", directions: int = 2,
                 init: str = "uniform") -> None:
        super().__init__(rng)
        self.size, self.dim, self.pos_type, self.directions = size, dim, pos_type, directions
        initializer = uniform_init() if init == "uniform" else normal_init()
        if pos_type == "sinus":
            self.fixed = tf.constant(sinusoidal_grid(size, dim, directions))
        elif pos_type == "linear":
            self.emb = self.add_var("emb", (directions, dim // directions), initializer)
        elif pos_type == "trainable":
            self.x_emb = self.add_var("x_emb", (size, dim // 2), initializer)
            self.y_emb = self.add_var("y_emb", (size, dim - dim // 2), initializer)
        elif pos_type == "trainable2d":
            self.emb = self.add_var("emb", (size, size, dim), initializer)
        else:
            raise ValueError(f"unknown pos_type {pos_type!r}")

    def __call__(self) -> tf.Tensor:
        """Returns `[S*S, D]`."""
        s = self.size
        if self.pos_type == "sinus":
            return self.fixed
        if self.pos_type == "linear":
            coords = np.linspace(-1.0, 1.0, s)
            ys, xs = np.meshgrid(coords, coords, indexing="ij")
            thetas = np.arange(self.directions) * math.pi / self.directions
            proj = xs.reshape(-1, 1) * np.cos(thetas) + ys.reshape(-1, 1) * np.sin(thetas)  # [S*S, n]
            enc = tf.constant(proj, tf.float32)[:, :, None] * self.emb[None]  # [S*S, n, D/n]
            return tf.reshape(enc, [s * s, -1])
        if self.pos_type == "trainable":
            xe = tf.tile(self.x_emb[None, :, :], [s, 1, 1])
            ye = tf.tile(self.y_emb[:, None, :], [1, s, 1])
            return tf.reshape(tf.concat([xe, ye], axis=-1), [s * s, self.dim])
        return tf.reshape(self.emb, [s * s, self.dim])
