"""Fréchet Inception Distance, computed as the reference implementations do.

FID = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 sqrtm(S1 S2)), real part, with float64 means and unbiased (N - 1) covariances
of the 2048-d pool_3 features of inception-2015-12-05; `scipy.linalg.sqrtm` without the deprecated `disp` argument.
"""

from __future__ import annotations

from typing import Iterable, Iterator, Optional

import numpy as np
import scipy.linalg
from tqdm import tqdm

from dnnlib.util import UserError
from metrics.inception import FeatureNet, load_inception
from metrics.stats import FeatureStats


def fid_from_stats(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """FID between two Gaussians.

    Args:
        mu1, mu2: Means `[D]`.
        sigma1, sigma2: Covariances `[D, D]`.

    Returns:
        The Fréchet distance (may be slightly negative from numerical noise when the sets are equal).
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    mean_term = float(np.square(mu1 - mu2).sum())
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    return mean_term + float(np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(np.real(covmean)))


def fid_from_feature_stats(a: FeatureStats, b: FeatureStats) -> float:
    """FID between two accumulated feature statistics."""
    return fid_from_stats(a.mean(), a.cov(), b.mean(), b.cov())


def iterate_batches(images: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    """Yields consecutive `[<=batch_size, H, W, C]` slices of an image array."""
    for start in range(0, len(images), batch_size):
        yield images[start:start + batch_size]


def accumulate(feature_net: FeatureNet, batches: Iterable[np.ndarray], total: Optional[int] = None,
               desc: str = "features", capture: bool = False, resize: str = "legacy") -> FeatureStats:
    """Runs uint8 image batches through Inception and accumulates their feature statistics (streaming).

    Args:
        feature_net: Loaded Inception.
        batches: Iterable of uint8 `[B, H, W, 3]`.
        total: Number of images, for the progress bar.
        desc: Progress bar label.
        capture: Keep the feature rows too.
        resize: "legacy" (standard) or "half_pixel" (for comparisons only).
    """
    stats = FeatureStats(capture=capture)
    with tqdm(total=total, desc=desc, unit="img", leave=False, dynamic_ncols=True) as bar:
        for batch in batches:
            stats.append(feature_net.features(batch, resize=resize))
            bar.update(len(batch))
    return stats


def _check_images(images: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(images)
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
        raise UserError(f"fid_between: {name} must be uint8 [N, H, W, 3], got {arr.dtype} {list(arr.shape)}; "
                        "quantize generated images first: round(clip((x+1)*127.5, 0, 255))")
    if len(arr) < 2:
        raise UserError(f"fid_between: {name} has {len(arr)} images; FID needs at least 2 per set")
    return arr


def fid_between(images_a: np.ndarray, images_b: np.ndarray, batch_size: int = 32,
                inception_path: Optional[str] = None, cache_dir: Optional[str] = None,
                feature_net: Optional[FeatureNet] = None) -> float:
    """FID between two uint8 image sets of any size (resized to 299x299 with the TF1 legacy bilinear resize).

    Args:
        images_a: uint8 `[N, H, W, 3]`.
        images_b: uint8 `[M, H', W', 3]`.
        batch_size: Images per Inception call.
        inception_path: Explicit Inception weights (default: the documented loading order).
        cache_dir: Download cache dir.
        feature_net: An already loaded Inception (overrides `inception_path`).

    Returns:
        The FID as a float. Note that FID is biased at small N: compare values only at equal N.
    """
    images_a, images_b = _check_images(images_a, "images_a"), _check_images(images_b, "images_b")
    net = feature_net or load_inception(inception_path, cache_dir)
    stats_a = accumulate(net, iterate_batches(images_a, batch_size), len(images_a), "FID set a")
    stats_b = accumulate(net, iterate_batches(images_b, batch_size), len(images_b), "FID set b")
    return fid_from_feature_stats(stats_a, stats_b)
