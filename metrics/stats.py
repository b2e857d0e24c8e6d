"""Streaming feature statistics: float64 mean/covariance without holding the features, optional capture."""

from __future__ import annotations

import io
from typing import Optional

import numpy as np

from dnnlib.util import UserError, write_atomic


class FeatureStats:
    """Accumulates the mean and unbiased covariance of feature rows in float64, batch by batch.

    The sums are taken around a shift (the first batch's mean) so that float64 cancellation stays negligible.
    With `capture=True` the rows are also kept (float32; needed by KID and precision/recall only).

    Attributes:
        num_items: Number of rows seen.
        dim: Feature dimension (set by the first batch).
    """

    def __init__(self, capture: bool = False, max_items: Optional[int] = None):
        """Creates an empty accumulator.

        Args:
            capture: Also keep the rows (float32), for metrics that need them all.
            max_items: Ignore rows beyond this many (None: no limit).
        """
        self.capture = capture
        self.max_items = max_items
        self.num_items = 0
        self.dim: Optional[int] = None
        self._shift: Optional[np.ndarray] = None
        self._sum: Optional[np.ndarray] = None
        self._sum_sq: Optional[np.ndarray] = None
        self._rows: list = []

    @property
    def is_full(self) -> bool:
        """Whether `max_items` rows have been seen."""
        return self.max_items is not None and self.num_items >= self.max_items

    def append(self, features: np.ndarray) -> None:
        """Adds feature rows `[B, D]` (any float dtype)."""
        x = np.asarray(features)
        if x.ndim != 2:
            raise ValueError(f"features must be [B, D], got shape {x.shape}")
        if self.max_items is not None:
            x = x[: max(self.max_items - self.num_items, 0)]
        if x.shape[0] == 0:
            return
        x64 = x.astype(np.float64)
        if self._shift is None:
            self.dim = x.shape[1]
            self._shift = x64.mean(axis=0)
            self._sum = np.zeros([self.dim], np.float64)
            self._sum_sq = np.zeros([self.dim, self.dim], np.float64)
        elif x.shape[1] != self.dim:
            raise ValueError(f"feature dimension changed from {self.dim} to {x.shape[1]}")
        d = x64 - self._shift
        self._sum += d.sum(axis=0)
        self._sum_sq += d.T @ d
        self.num_items += x.shape[0]
        if self.capture:
            self._rows.append(x.astype(np.float32))

    def mean(self) -> np.ndarray:
        """float64 mean `[D]`."""
        self._need(1)
        return self._shift + self._sum / self.num_items

    def cov(self) -> np.ndarray:
        """float64 unbiased covariance `[D, D]` (divides by N - 1, like `np.cov`)."""
        self._need(2)
        d = self._sum / self.num_items
        return (self._sum_sq - self.num_items * np.outer(d, d)) / (self.num_items - 1)

    def features(self) -> np.ndarray:
        """All captured rows, float32 `[N, D]` (only with `capture=True`)."""
        if not self.capture:
            raise ValueError("features were not captured (FeatureStats(capture=True))")
        self._need(1)
        return np.concatenate(self._rows, axis=0)

    def _need(self, n: int) -> None:
        if self.num_items < n:
            raise UserError(f"metrics: need at least {n} images for these statistics, got {self.num_items}; "
                            "use more evaluation images")

    def save(self, path: str) -> None:
        """Writes mean, covariance, count (and captured rows) to an `.npz` atomically."""
        arrays = dict(mean=self.mean(), cov=self.cov(), num_items=np.int64(self.num_items))
        if self.capture:
            arrays["features"] = self.features()
        save_npz_atomic(path, **arrays)

    @classmethod
    def load(cls, path: str) -> "FeatureStats":
        """Reads statistics written by `save` (restores an equivalent accumulator)."""
        with np.load(path) as data:
            stats = cls(capture="features" in data.files)
            n, mean, cov = int(data["num_items"]), data["mean"], data["cov"]
            if stats.capture:
                stats._rows = [data["features"]]
        stats.num_items, stats.dim = n, mean.shape[0]
        stats._shift = mean
        stats._sum = np.zeros_like(mean)
        stats._sum_sq = cov * (n - 1)
        return stats


def save_npz_atomic(path: str, **arrays: np.ndarray) -> None:
    """Writes arrays to an `.npz` with `dnnlib.util.write_atomic` (never a half-written file)."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_atomic(path, buf.getvalue())
