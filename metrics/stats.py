"""Streaming feature statistics: float64 mean/covariance without holding the features, optional capture."""

from __future__ import annotations

import io
from typing import Dict, Optional

import numpy as np

from dnnlib.files import write_atomic
from dnnlib.util import UserError


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
    def load(cls, path: str, capture: Optional[bool] = None, max_items: Optional[int] = None,
             dim: Optional[int] = None) -> "FeatureStats":
        """Reads statistics written by `save` (restores an equivalent accumulator), checking them first.

        Args:
            path: The `.npz` file.
            capture: Whether the rows must be there (True) or absent (False); None: either.
            max_items: The most rows the statistics may describe (the image count they were computed for).
            dim: The expected feature dimension, or None.

        Raises:
            CacheDamaged: The file is unreadable, incomplete, of other shapes or counts, or not finite.
        """
        data = read_npz(path)
        check_stats_arrays(data, capture, max_items, dim)
        n, mean, cov = int(data["num_items"]), data["mean"], data["cov"]
        stats = cls(capture="features" in data)
        if stats.capture:
            stats._rows = [data["features"]]
        stats.num_items, stats.dim = n, mean.shape[0]
        stats._shift = mean
        stats._sum = np.zeros_like(mean)
        stats._sum_sq = cov * (n - 1)
        return stats


class CacheDamaged(ValueError):
    """A cached statistics file that cannot be used: unreadable, incomplete, inconsistent or not finite."""


def read_npz(path: str) -> Dict[str, np.ndarray]:
    """Every array of an `.npz` file (pickled objects refused).

    Raises:
        CacheDamaged: The file cannot be read as an `.npz` (truncated, overwritten, empty, ...).
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except Exception as exc:  # a damaged zip fails in many ways (BadZipFile, EOFError, ValueError, zlib, struct)
        raise CacheDamaged(f"not a readable .npz: {type(exc).__name__}") from None


def check_stats_arrays(data: Dict[str, np.ndarray], capture: Optional[bool] = None,
                       max_items: Optional[int] = None, dim: Optional[int] = None) -> None:
    """Checks the arrays of a `FeatureStats.save` file (see `FeatureStats.load` for the arguments).

    Raises:
        CacheDamaged: Naming the first problem found.
    """
    missing = [k for k in ("mean", "cov", "num_items") if k not in data]
    if missing or (capture and "features" not in data) or (capture is False and "features" in data):
        raise CacheDamaged(f"incomplete: holds {', '.join(sorted(data)) or 'nothing'}")
    mean, cov, count = data["mean"], data["cov"], data["num_items"]
    if count.shape != () or count.dtype.kind not in "iu" or not 2 <= int(count) <= (max_items or int(count)):
        raise CacheDamaged(f"image count {count.tolist()} is not in 2..{max_items or 'any'}")
    d = mean.shape[0] if mean.ndim == 1 else -1
    if d < 1 or cov.shape != (d, d) or (dim is not None and d != dim):
        raise CacheDamaged(f"shapes mean {mean.shape}, cov {cov.shape} do not match"
                           + (f" {dim}-d features" if dim is not None else " each other"))
    arrays = [mean, cov] + ([data["features"]] if "features" in data else [])
    if "features" in data and data["features"].shape != (int(count), d):
        raise CacheDamaged(f"features of shape {data['features'].shape} for {int(count)} images of {d}-d")
    if any(a.dtype.kind != "f" or not np.isfinite(a).all() for a in arrays):
        raise CacheDamaged("values are not finite numbers")
    if not np.allclose(cov, cov.T, rtol=1e-6, atol=1e-9 * max(float(np.abs(cov).max()), 1.0)) or \
            (np.diag(cov) < 0).any():
        raise CacheDamaged("covariance is not symmetric with non-negative variances")


def check_feature_rows(data: Dict[str, np.ndarray], max_items: int, dim: Optional[int] = None) -> np.ndarray:
    """The `features` rows of a cached `.npz` (`[N, D]`, 1 <= N <= max_items, finite), checked.

    Raises:
        CacheDamaged: Missing, of another shape, or not finite.
    """
    rows = data.get("features")
    if rows is None or rows.ndim != 2 or not 1 <= rows.shape[0] <= max_items or \
            (dim is not None and rows.shape[1] != dim):
        raise CacheDamaged(f"features of shape {None if rows is None else rows.shape}, expected at most {max_items} "
                           f"rows of {dim or 'any'}-d")
    if rows.dtype.kind != "f" or not np.isfinite(rows).all():
        raise CacheDamaged("values are not finite numbers")
    return rows


def save_npz_atomic(path: str, **arrays: np.ndarray) -> None:
    """Writes arrays to an `.npz` with `dnnlib.files.write_atomic` (never a half-written file)."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_atomic(path, buf.getvalue())
