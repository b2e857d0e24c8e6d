"""Improved precision and recall (Kynkäänniemi et al. 2019) with k-NN feature manifolds, as StyleGAN2.

Each real feature's manifold ball has the radius of its k-th nearest real neighbour (k = 3, itself excluded);
precision = fraction of generated features inside at least one real ball; recall = fraction of real features inside
at least one generated ball (radii from the generated set). Distances are Euclidean, computed in row blocks.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

from dnnlib.util import UserError


def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances `[len(a), len(b)]` (float64 accumulation, clamped at 0 before the root)."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    sq = np.square(a64).sum(1)[:, None] + np.square(b64).sum(1)[None, :] - 2.0 * (a64 @ b64.T)
    return np.sqrt(np.maximum(sq, 0.0))


def knn_radii(features: np.ndarray, k: int = 3, block: int = 1024) -> np.ndarray:
    """Distance of each row to its k-th nearest other row `[N]` (the row itself, at distance 0, is skipped)."""
    if len(features) <= k:
        raise UserError(f"pr: need more than k={k} images per set, got {len(features)}")
    radii = np.empty([len(features)], np.float64)
    for start in range(0, len(features), block):
        d = pairwise_distances(features[start:start + block], features)
        radii[start:start + block] = np.partition(d, k, axis=1)[:, k]
    return radii


def manifold_coverage(manifold: np.ndarray, radii: np.ndarray, probes: np.ndarray, block: int = 1024) -> float:
    """Fraction of `probes` rows lying within `radii[j]` of some `manifold[j]`."""
    inside = np.zeros([len(probes)], bool)
    for start in range(0, len(probes), block):
        d = pairwise_distances(probes[start:start + block], manifold)
        inside[start:start + block] = (d <= radii[None, :]).any(axis=1)
    return float(inside.mean())


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> Tuple[float, float]:
    """(precision, recall) of generated features `fake [M, D]` against real features `real [N, D]`."""
    real, fake = np.asarray(real), np.asarray(fake)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"features must be [N, D] with equal D, got {real.shape} and {fake.shape}")
    precision = manifold_coverage(real, knn_radii(real, k), fake)
    recall = manifold_coverage(fake, knn_radii(fake, k), real)
    return precision, recall
