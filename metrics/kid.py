"""Kernel Inception Distance as in StyleGAN2-ADA: unbiased polynomial-kernel MMD^2 averaged over random subsets.

k(x, y) = (x . y / d + 1)^3 on d-dimensional Inception features; `num_subsets` (100) subsets of
m = min(N_real, N_fake, max_subset_size (1000)) rows drawn without replacement from each set.
"""

from __future__ import annotations

import numpy as np

from dnnlib.util import UserError


def kid_from_features(real: np.ndarray, fake: np.ndarray, num_subsets: int = 100, max_subset_size: int = 1000,
                      seed: int = 0) -> float:
    """KID between two feature sets.

    Args:
        real: `[N, D]` features of real images.
        fake: `[M, D]` features of generated images.
        num_subsets: Number of random subsets averaged.
        max_subset_size: Largest subset size.
        seed: Seed of the subset sampling (deterministic results).

    Returns:
        The KID (an unbiased estimate; may be slightly negative for equal distributions).
    """
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"features must be [N, D] with equal D, got {real.shape} and {fake.shape}")
    dim = real.shape[1]
    m = min(len(real), len(fake), max_subset_size)
    if m < 2:
        raise UserError(f"kid: need at least 2 real and 2 generated images, got {len(real)} and {len(fake)}")
    rng = np.random.RandomState(seed)
    total = 0.0
    for _ in range(num_subsets):
        x = fake[rng.choice(len(fake), m, replace=False)]
        y = real[rng.choice(len(real), m, replace=False)]
        k_xx = (x @ x.T / dim + 1) ** 3
        k_yy = (y @ y.T / dim + 1) ** 3
        k_xy = (x @ y.T / dim + 1) ** 3
        within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m - 1)
        total += within - 2.0 * k_xy.sum() / m
    return float(total / num_subsets / m)
