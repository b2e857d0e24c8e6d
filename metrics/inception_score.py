"""Inception Score with 10 splits, streamed: no per-image class probabilities are kept.

IS_i = exp(mean_x KL(p(y|x) || p_i(y))) over split i, with p(y|x) the softmax of the inception-2015-12-05 logits
without the output bias (as the original IS code and StyleGAN2-ADA). Per split only the sum of p(y|x) and the sum
of p log p are needed, since mean_x KL = mean_x sum_y p log p - sum_y m_y log m_y with m = mean_x p(y|x).
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np
from scipy.special import xlogy

from dnnlib.util import UserError


def split_bounds(num_items: int, num_splits: int) -> List[Tuple[int, int]]:
    """Split i covers items [i * N // splits, (i + 1) * N // splits)."""
    return [(i * num_items // num_splits, (i + 1) * num_items // num_splits) for i in range(num_splits)]


class InceptionScoreAccumulator:
    """Accumulates the per-split sufficient statistics of the Inception Score.

    The number of images must be known in advance so that split boundaries are fixed.
    """

    def __init__(self, num_items: int, num_splits: int = 10, num_classes: Optional[int] = None):
        if num_items < num_splits:
            raise UserError(f"is: need at least {num_splits} images for {num_splits} splits, got {num_items}")
        self.bounds = split_bounds(num_items, num_splits)
        self.num_items = num_items
        self.seen = 0
        self.prob_sum = None if num_classes is None else np.zeros([num_splits, num_classes], np.float64)
        self.plogp_sum = np.zeros([num_splits], np.float64)

    def append(self, probs: np.ndarray) -> None:
        """Adds class probabilities `[B, C]` of the next B images (in order)."""
        p = np.asarray(probs, np.float64)
        p = p[: max(self.num_items - self.seen, 0)]
        if self.prob_sum is None:
            self.prob_sum = np.zeros([len(self.bounds), p.shape[1]], np.float64)
        for i, (lo, hi) in enumerate(self.bounds):
            a, b = max(lo, self.seen), min(hi, self.seen + len(p))
            if a < b:
                part = p[a - self.seen:b - self.seen]
                self.prob_sum[i] += part.sum(axis=0)
                self.plogp_sum[i] += xlogy(part, part).sum()
        self.seen += len(p)

    def result(self) -> Tuple[float, float]:
        """Returns (mean, std) of the per-split scores."""
        if self.seen < self.num_items:
            raise UserError(f"is: only {self.seen} of {self.num_items} images were scored")
        sizes = np.array([hi - lo for lo, hi in self.bounds], np.float64)
        marginal = self.prob_sum / sizes[:, None]
        kl = self.plogp_sum / sizes - xlogy(marginal, marginal).sum(axis=1)
        scores = np.exp(kl)
        return float(np.mean(scores)), float(np.std(scores))


def inception_score(probs: np.ndarray, num_splits: int = 10) -> Tuple[float, float]:
    """Inception Score (mean, std) of class probabilities `[N, C]` held in memory."""
    acc = InceptionScoreAccumulator(len(probs), num_splits, np.asarray(probs).shape[1])
    acc.append(probs)
    return acc.result()
