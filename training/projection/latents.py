"""The latent spaces a projection optimizes, their starting points and their conversion to the synthesis input.

A GANformer has K = k + 1 latent vectors of d dims (k local ones, then the global one); the synthesis network
takes ws `[B, K, S, d]`, one w per latent and broadcast slot (S = 2 log2(R) - 1).

- `z`: the optimized variable is z `[B, K, d]`, mapped by the mapping network (no truncation). Start: a seeded
  normal draw (z = 0 is degenerate: the local latents are pixel-normalized).
- `w`: one w per latent `[B, K, d]`, broadcast to all S slots. Start: the mean w of each latent.
- `w+`: every latent and slot on its own `[B, K, S, d]`. Start: the mean w of each latent in every slot.

The mean w of each latent and the spread (the RMS distance of one latent vector from its mean, which scales the
latent noise of the schedule) come from `num_samples` seeded samples of the mapping network.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import numpy as np
import tensorflow as tf

from training.projection import SPACES
STAT_SAMPLES = 10_000
STAT_BATCH = 1_000


@dataclasses.dataclass
class LatentStats:
    """Where the optimization starts and how large its latent noise is.

    Attributes:
        w_mean: Mean w of each latent `[K, d]` (slot 0).
        w_spread: RMS over samples and latents of `|w_k - w_mean_k|` (a scalar).
        z_spread: The same for z (about sqrt(d)).
    """

    w_mean: np.ndarray
    w_spread: float
    z_spread: float


def latent_stats(G: Any, labels: np.ndarray, num_samples: int = STAT_SAMPLES, seed: int = 0) -> LatentStats:
    """Mean and spread of the mapping network's outputs over `num_samples` z drawn with `RandomState(seed)`.

    Args:
        G: Generator (`G.mapping(z, labels)` -> ws `[N, K, S, d]`, `G.latent_shape`).
        labels: `[1, label_dim]` label of the projection (`[1, 0]` for unconditional models).
        num_samples: Number of samples.
        seed: Seed of the samples.
    """
    K, d = G.latent_shape
    rng = np.random.RandomState(seed)
    ws, zs = [], []
    for start in range(0, num_samples, STAT_BATCH):
        z = rng.randn(min(STAT_BATCH, num_samples - start), K, d).astype(np.float32)
        lab = np.repeat(labels, len(z), axis=0)
        ws.append(G.mapping(tf.constant(z), tf.constant(lab) if lab.shape[1] else None)[:, :, 0].numpy())
        zs.append(z)
    w, z = np.concatenate(ws).astype(np.float64), np.concatenate(zs).astype(np.float64)
    w_mean = w.mean(axis=0)
    w_spread = float(np.sqrt(np.sum((w - w_mean) ** 2, axis=-1).mean()))
    z_spread = float(np.sqrt(np.sum((z - z.mean(axis=0)) ** 2, axis=-1).mean()))
    return LatentStats(w_mean.astype(np.float32), w_spread, z_spread)


def initial_latents(space: str, stats: LatentStats, batch: int, num_ws: int, seed: int) -> np.ndarray:
    """The starting point of the optimized variable: z `[B, K, d]`, w `[B, K, d]` or w+ `[B, K, S, d]`."""
    K, d = stats.w_mean.shape
    if space == "z":
        return np.random.RandomState(seed).randn(batch, K, d).astype(np.float32)
    if space == "w":
        return np.repeat(stats.w_mean[None], batch, axis=0)
    if space == "w+":
        return np.repeat(np.repeat(stats.w_mean[None, :, None], num_ws, axis=2), batch, axis=0)
    raise ValueError(f"space must be one of {SPACES}, got {space!r}")


def spread(space: str, stats: LatentStats) -> float:
    """The RMS spread of one latent vector in `space` (scales the latent noise)."""
    return stats.z_spread if space == "z" else stats.w_spread


def to_ws(G: Any, space: str, latents: tf.Tensor, labels: Optional[tf.Tensor]) -> tf.Tensor:
    """The synthesis input ws `[B, K, S, d]` of the optimized latents (see the module docstring)."""
    if space == "z":
        return G.mapping(latents, labels)
    if space == "w":
        return tf.tile(latents[:, :, None], [1, 1, G.num_ws, 1])
    return latents
