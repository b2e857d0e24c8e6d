"""The moving average of G (Gs): half-life, ramp-up, and that the ramp-up leaves long runs unchanged."""

import numpy as np
import pytest

from training.steps import ema_beta


def _gs_weights(betas: np.ndarray) -> np.ndarray:
    """Weight of each G iterate in Gs after the last update (iterate 0 is the initial G, Gs starts equal to it).

    Gs_{t+1} = (1 - b_t) G_{t+1} + b_t Gs_t, so the weight of G_j is (1 - b_{j-1}) * prod_{t >= j} b_t.
    """
    n = len(betas)
    tail = np.concatenate([np.cumprod(betas[::-1])[::-1][1:], [1.0]])  # prod_{t > j-1} b_t for j = 1..n
    weights = np.empty(n + 1)
    weights[0] = np.prod(betas)
    weights[1:] = (1.0 - betas) * tail
    return weights


def _betas(batch: int, ema_kimg: float, rampup, kimg: float) -> np.ndarray:
    steps = int(kimg * 1000 / batch)
    return np.array([ema_beta(batch, ema_kimg, rampup, s * batch) for s in range(steps)])


def test_beta_without_rampup_is_the_original_half_life():
    assert ema_beta(32, 10.0, None, 0) == pytest.approx(0.5 ** (32 / 10000))
    assert ema_beta(32, 10.0, 0.0, 123456) == pytest.approx(0.5 ** (32 / 10000))


def test_rampup_starts_at_g_and_reaches_the_half_life():
    assert ema_beta(16, 10.0, 0.05, 0) == 0.0  # first update: Gs := G
    assert ema_beta(16, 10.0, 0.05, 1000) == pytest.approx(0.5 ** (16 / 50))  # half-life 0.05 * 1000 images
    assert ema_beta(16, 10.0, 0.05, 200_000) == pytest.approx(0.5 ** (16 / 10000))
    assert ema_beta(16, 10.0, 0.05, 10**7) == pytest.approx(0.5 ** (16 / 10000))


def test_gs_weights_sum_to_one():
    for rampup in (None, 0.05):
        w = _gs_weights(_betas(32, 10.0, rampup, 20))
        assert w.sum() == pytest.approx(1.0) and (w >= 0).all()


def test_rampup_drops_the_initial_weights_early():
    """At 4 kimg (the quickstart) without ramp-up ~76% of Gs is the random initial G; with it, none is."""
    off = _gs_weights(_betas(16, 10.0, None, 4))
    on = _gs_weights(_betas(16, 10.0, 0.05, 4))
    assert off[0] == pytest.approx(0.5 ** 0.4, rel=1e-3)
    assert on[0] == 0.0
    assert on[-200:].sum() > 0.99  # the newest 3.2 kimg


@pytest.mark.parametrize("batch", [32, 64])
def test_rampup_does_not_change_long_runs(batch):
    """After ema_kimg / rampup (200 kimg) the two averages forget their difference with the 10-kimg half-life:
    at 600 kimg the total variation between the weights Gs gives each G iterate is below 1e-10."""
    off = _gs_weights(_betas(batch, 10.0, None, 600))
    on = _gs_weights(_betas(batch, 10.0, 0.05, 600))
    assert 0.5 * np.abs(off - on).sum() < 1e-10
    early_off = _gs_weights(_betas(batch, 10.0, None, 100))
    early_on = _gs_weights(_betas(batch, 10.0, 0.05, 100))
    assert 0.5 * np.abs(early_off - early_on).sum() > 0.1  # the ramp-up really acts early on
