"""Metric math on synthetic features against NumPy oracles and closed forms (no networks involved)."""

import itertools

import numpy as np
import pytest

from dnnlib.util import UserError
from metrics import fid, inception_score, kid, precision_recall
from metrics.stats import FeatureStats


def _random_spd(rng, dim, eigs):
    q, _ = np.linalg.qr(rng.randn(dim, dim))
    return q, (q * eigs) @ q.T


def test_feature_stats_match_numpy_in_uneven_batches(tmp_path):
    rng = np.random.RandomState(0)
    x = (rng.randn(103, 7) * 3 + 50).astype(np.float32)
    stats = FeatureStats(capture=True)
    for lo, hi in [(0, 1), (1, 40), (40, 41), (41, 103)]:
        stats.append(x[lo:hi])
    np.testing.assert_allclose(stats.mean(), x.astype(np.float64).mean(0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(stats.cov(), np.cov(x, rowvar=False), rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(stats.features(), x)
    stats.save(str(tmp_path / "s.npz"))
    loaded = FeatureStats.load(str(tmp_path / "s.npz"))
    assert loaded.num_items == 103
    np.testing.assert_allclose(loaded.cov(), stats.cov(), rtol=1e-12)
    np.testing.assert_allclose(loaded.mean(), stats.mean(), rtol=1e-12)


def test_feature_stats_respects_max_items():
    stats = FeatureStats(max_items=5)
    stats.append(np.arange(12, dtype=np.float32).reshape(6, 2))
    stats.append(np.ones([3, 2], np.float32))
    assert stats.num_items == 5 and stats.is_full
    np.testing.assert_allclose(stats.mean(), [4.0, 5.0])


def test_fid_closed_form_for_commuting_gaussians():
    rng = np.random.RandomState(1)
    a, b = rng.uniform(0.5, 3.0, 6), rng.uniform(0.1, 2.0, 6)
    q, s1 = _random_spd(rng, 6, a)
    s2 = (q * b) @ q.T
    mu1, mu2 = rng.randn(6), rng.randn(6)
    expected = np.square(mu1 - mu2).sum() + np.square(np.sqrt(a) - np.sqrt(b)).sum()
    assert fid.fid_from_stats(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)


def test_fid_closed_form_for_sampled_gaussian_features():
    rng = np.random.RandomState(2)
    n = 200_000
    sa, sb = np.array([1.0, 2.0, 0.5]), np.array([0.5, 1.0, 1.5])
    xa = rng.randn(n, 3) * sa + [0.0, 1.0, 0.0]
    xb = rng.randn(n, 3) * sb + [1.0, 1.0, -1.0]
    expected = 2.0 + np.square(sa - sb).sum()  # diagonal covariances sa^2, sb^2
    stats_a, stats_b = FeatureStats(), FeatureStats()
    for s, x in ((stats_a, xa), (stats_b, xb)):
        for chunk in np.array_split(x, 7):
            s.append(chunk)
    assert fid.fid_from_feature_stats(stats_a, stats_b) == pytest.approx(expected, abs=0.03)


def test_fid_of_identical_full_rank_stats_is_zero():
    rng = np.random.RandomState(3)
    _, s = _random_spd(rng, 16, rng.uniform(0.1, 5.0, 16))
    mu = rng.randn(16)
    assert abs(fid.fid_from_stats(mu, s, mu, s)) < 1e-6


def _kid_oracle(x, y):
    """Unbiased MMD^2 with the cubic polynomial kernel, by explicit pair loops."""
    d = x.shape[1]
    k = lambda u, v: (u @ v / d + 1) ** 3  # noqa: E731
    m = len(x)
    xx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_matches_explicit_mmd_oracle():
    rng = np.random.RandomState(4)
    real, fake = rng.randn(20, 5), rng.randn(20, 5) * 1.5 + 0.3
    value = kid.kid_from_features(real, fake, num_subsets=1, max_subset_size=1000)
    assert value == pytest.approx(_kid_oracle(fake, real), rel=1e-9)


def test_kid_subsets_separate_equal_and_different_distributions():
    rng = np.random.RandomState(5)
    real = rng.randn(600, 8)
    same = kid.kid_from_features(real, rng.randn(600, 8), num_subsets=20, max_subset_size=200)
    diff = kid.kid_from_features(real, rng.randn(600, 8) + 0.5, num_subsets=20, max_subset_size=200)
    assert abs(same) < 0.01 and diff > 0.05


def _is_oracle(probs, splits):
    scores = []
    for i in range(splits):
        part = probs[i * len(probs) // splits:(i + 1) * len(probs) // splits]
        kl = part * (np.log(part) - np.log(part.mean(0, keepdims=True)))
        scores.append(np.exp(kl.sum(1).mean()))
    return np.mean(scores), np.std(scores)


def test_inception_score_streaming_matches_oracle():
    rng = np.random.RandomState(6)
    probs = rng.dirichlet(np.full(50, 0.3), size=203)
    acc = inception_score.InceptionScoreAccumulator(len(probs), num_splits=10, num_classes=50)
    for lo, hi in [(0, 7), (7, 100), (100, 101), (101, 203)]:
        acc.append(probs[lo:hi])
    mean, std = acc.result()
    want_mean, want_std = _is_oracle(probs, 10)
    assert mean == pytest.approx(want_mean, rel=1e-10)
    assert std == pytest.approx(want_std, rel=1e-8, abs=1e-12)


def test_inception_score_of_confident_uniform_classes_equals_class_count():
    probs = np.full([100, 10], 1e-12)
    probs[np.arange(100), np.arange(100) % 10] = 1.0
    mean, _ = inception_score.inception_score(probs / probs.sum(1, keepdims=True), num_splits=10)
    assert mean == pytest.approx(10.0, rel=1e-6)


def _pr_oracle(real, fake, k):
    def radii(x):
        return np.array([np.sort([np.linalg.norm(x[i] - x[j]) for j in range(len(x))])[k] for i in range(len(x))])

    def coverage(manifold, r, probes):
        return np.mean([any(np.linalg.norm(p - manifold[j]) <= r[j] for j in range(len(manifold))) for p in probes])

    return coverage(real, radii(real), fake), coverage(fake, radii(fake), real)


def test_precision_recall_matches_brute_force_oracle():
    rng = np.random.RandomState(7)
    real = rng.randn(40, 4)
    fake = np.concatenate([rng.randn(25, 4) * 0.5, rng.randn(15, 4) + 4.0])
    got = precision_recall.precision_recall(real, fake, k=3)
    want = _pr_oracle(real, fake, 3)
    assert got == pytest.approx(want, abs=1e-12)
    assert 0.0 < got[0] < 1.0 and 0.0 < got[1] < 1.0


def test_precision_recall_extremes():
    rng = np.random.RandomState(8)
    real = rng.randn(30, 3)
    assert precision_recall.precision_recall(real, real.copy()) == (1.0, 1.0)
    assert precision_recall.precision_recall(real, real + 100.0) == (0.0, 0.0)
    with pytest.raises(UserError):
        precision_recall.precision_recall(real[:3], real[:3])
