"""The training maths against independent closed forms, not against the code itself.

Losses and regularizers are checked on a tiny analytic D / G whose input gradients are taken by central finite
differences in float64 numpy; Adam against a numpy Adam; EMA, w_avg, skipped updates and --clip through
`TrainingSteps` on tiny networks. Equalized-lr multipliers: `tests/test_equalized_lr.py`.
"""

import numpy as np
import pytest
import tensorflow as tf

from tests.train_helpers import tiny_steps
from training import loss as losses
from training.optimizer import Adam
from training.steps import ema_beta

EPS = 1e-5


def _softplus(x):
    return np.logaddexp(0.0, x)


def _fd_grad(f, x, eps=EPS):
    """Central finite differences of a scalar numpy function `f` at float64 `x` (any shape)."""
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        hi, lo = x.copy(), x.copy()
        hi[i] += eps
        lo[i] -= eps
        grad[i] = (f(hi) - f(lo)) / (2 * eps)
    return grad


# --------------------------------------------------------------------------------------------------- G / D losses
G_CLOSED = {"logistic_ns": lambda s: _softplus(-s), "logistic": lambda s: -_softplus(s), "hinge": lambda s: -s,
            "wgan": lambda s: -s}
D_CLOSED = {"logistic": lambda r, f: _softplus(f) + _softplus(-r),
            "hinge": lambda r, f: np.maximum(0, 1 + f) + np.maximum(0, 1 - r),
            "wgan": lambda r, f: f - r + 0.001 * r ** 2}
SCORES = np.array([-3.0, -0.7, 0.2, 1.9, 4.0])


@pytest.mark.parametrize("kind", sorted(G_CLOSED))
def test_generator_loss_and_its_gradient(kind):
    s = tf.Variable(SCORES[:, None])
    with tf.GradientTape() as tape:
        per_sample = losses.generator_loss(kind, s)
        total = tf.reduce_sum(per_sample)
    np.testing.assert_allclose(per_sample.numpy(), G_CLOSED[kind](SCORES), rtol=1e-12)
    fd = _fd_grad(lambda x: G_CLOSED[kind](x).sum(), SCORES)
    np.testing.assert_allclose(tape.gradient(total, s).numpy()[:, 0], fd, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("kind", sorted(D_CLOSED))
def test_discriminator_loss_and_its_gradient(kind):
    real, fake = SCORES[:, None], SCORES[::-1, None] * 0.6 + 0.05  # away from the hinge kinks
    r, f = tf.Variable(real), tf.Variable(fake)
    with tf.GradientTape() as tape:
        per_sample = losses.discriminator_loss(kind, r, f)
        total = tf.reduce_sum(per_sample)
    np.testing.assert_allclose(per_sample.numpy(), D_CLOSED[kind](real[:, 0], fake[:, 0]), rtol=1e-12)
    gr, gf = tape.gradient(total, [r, f])
    np.testing.assert_allclose(gr.numpy()[:, 0], _fd_grad(lambda x: D_CLOSED[kind](x, fake[:, 0]).sum(), real[:, 0]),
                               rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(gf.numpy()[:, 0], _fd_grad(lambda x: D_CLOSED[kind](real[:, 0], x).sum(), fake[:, 0]),
                               rtol=1e-6, atol=1e-9)


# ----------------------------------------------------------------------------------------------- D regularizers
RNG = np.random.RandomState(3)
REALS = RNG.uniform(-1, 1, [3, 2, 2, 1])
FAKES = RNG.uniform(-1, 1, [3, 2, 2, 1])
A, B = 0.8, 1.3  # D's two parameters


def _d_np(x, a=A, b=B):
    """Analytic D: per-sample score sum(b tanh(a x) + x^3 / 3) over pixels; `[N, H, W, C]` -> `[N]`."""
    return (b * np.tanh(a * x) + x ** 3 / 3).sum(axis=(1, 2, 3))


def _grad_sq_np(x, a=A, b=B):
    """||grad_x D(x)||^2 per sample, by finite differences."""
    return np.array([(_fd_grad(lambda y: _d_np(y[None], a, b)[0], xi) ** 2).sum() for xi in x])


def _reg_np(kind, gamma, mix, a=A, b=B):
    if kind == "r1":
        return gamma / 2 * _grad_sq_np(REALS, a, b)
    if kind == "r2":
        return gamma / 2 * _grad_sq_np(FAKES, a, b)
    interp = REALS + (FAKES - REALS) * mix
    return gamma * (np.sqrt(_grad_sq_np(interp, a, b) + 1e-8) - 1.0) ** 2


@pytest.mark.parametrize("kind", ["r1", "r2", "gp"])
def test_discriminator_regularizers_match_finite_differences(kind):
    gamma, seed = 10.0, tf.constant([5, 6], tf.int64)
    a, b = tf.Variable(A, dtype=tf.float64), tf.Variable(B, dtype=tf.float64)

    def d_fn(x):
        x = tf.cast(x, tf.float64)
        return tf.reduce_sum(b * tf.tanh(a * x) + x ** 3 / 3, axis=[1, 2, 3])[:, None]

    with tf.GradientTape() as tape:
        reg, _ = losses.discriminator_reg(kind, d_fn, tf.constant(REALS, tf.float32), tf.constant(FAKES, tf.float32),
                                          gamma, seed=seed)
        total = tf.reduce_sum(reg)
    mix = tf.random.stateless_uniform([3, 1, 1, 1], seed).numpy().astype(np.float64)
    np.testing.assert_allclose(reg.numpy(), _reg_np(kind, gamma, mix), rtol=1e-5)
    ga, gb = tape.gradient(total, [a, b])  # the regularizer's gradient w.r.t. D's parameters
    fd_a = (_reg_np(kind, gamma, mix, A + 1e-4).sum() - _reg_np(kind, gamma, mix, A - 1e-4).sum()) / 2e-4
    fd_b = (_reg_np(kind, gamma, mix, A, B + 1e-4).sum() - _reg_np(kind, gamma, mix, A, B - 1e-4).sum()) / 2e-4
    np.testing.assert_allclose([ga.numpy(), gb.numpy()], [fd_a, fd_b], rtol=1e-4)


def test_path_length_penalty_matches_finite_differences():
    """G: images = tanh(ws . M), ws `[B, K, S, d]`; penalty (|J^T y| - a)^2 with y ~ N(0, 1)/sqrt(HW), a the
    running mean after its update by decay 0.01 (StyleGAN2)."""
    rng = np.random.RandomState(0)
    ws_np, m_np = rng.randn(2, 2, 3, 4), rng.randn(2, 3, 4, 3, 3, 1) * 0.5  # [B,K,S,d], [K,S,d,H,W,C]
    seed, pl_mean0 = tf.constant([1, 2], tf.int64), 0.7
    y = tf.random.stateless_normal([2, 3, 3, 1], seed).numpy().astype(np.float64) / 3.0  # / sqrt(H*W)

    def lengths_np(m):
        out = []
        for w in ws_np:
            g = _fd_grad(lambda v: (np.tanh(np.einsum("ksd,ksdhwc->hwc", v, m)) * y[len(out)]).sum(), w)
            out.append(np.sqrt((g ** 2).sum(-1).mean()))
        return np.array(out)

    def penalty_np(m, mean=None):
        """Penalty and updated mean; `mean` given: held fixed (the running mean is a variable: no gradient)."""
        lengths = lengths_np(m)
        new_mean = pl_mean0 + 0.01 * (lengths.mean() - pl_mean0) if mean is None else mean
        return (lengths - new_mean) ** 2, new_mean

    M = tf.Variable(m_np.astype(np.float32))
    pl_mean = tf.Variable(pl_mean0, dtype=tf.float32)
    with tf.GradientTape() as tape:
        penalty, new_mean = losses.path_length_penalty(
            lambda w: tf.tanh(tf.einsum("bksd,ksdhwc->bhwc", w, M)), tf.constant(ws_np, tf.float32), pl_mean,
            seed=seed)
        total = tf.reduce_sum(penalty)
    want, want_mean = penalty_np(m_np)
    np.testing.assert_allclose(penalty.numpy(), want, rtol=1e-4, atol=1e-7)
    assert new_mean.numpy() == pytest.approx(want_mean, rel=1e-6)
    # d(penalty)/dM for a few entries of M (the gradient G's weights get), by finite differences
    grad = tape.gradient(total, M).numpy()
    for idx in [(0, 0, 0, 0, 0, 0), (1, 2, 3, 2, 1, 0), (0, 1, 2, 1, 2, 0)]:
        hi, lo = m_np.copy(), m_np.copy()
        hi[idx] += 1e-4
        lo[idx] -= 1e-4
        fd = (penalty_np(hi, want_mean)[0].sum() - penalty_np(lo, want_mean)[0].sum()) / 2e-4
        assert grad[idx] == pytest.approx(fd, rel=1e-3, abs=1e-6)


# ---------------------------------------------------------------------------------------------------------- Adam
def _adam_np(theta, grads, lr, beta1, beta2, eps=1e-8):
    """Adam as tf.compat.v1.train.AdamOptimizer (StyleGAN2's): bias correction folded into the step size."""
    m, v = np.zeros_like(theta), np.zeros_like(theta)
    for t, g in enumerate(grads, start=1):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        theta = theta - lr * np.sqrt(1 - beta2 ** t) / (1 - beta1 ** t) * m / (np.sqrt(v) + eps)
    return theta, m, v


@pytest.mark.parametrize("beta1,interval", [(0.0, 16), (0.0, 4), (0.5, 16), (0.0, None)])
def test_adam_with_the_lazy_regularization_ratio_matches_numpy(beta1, interval):
    """A main step and a regularization step share one set of slots; lr, beta1, beta2 are adjusted by I/(I+1)."""
    rng = np.random.RandomState(1)
    theta0, grads = rng.randn(5), [rng.randn(5), rng.randn(5) * 3, rng.randn(5) * 0.1]
    var = tf.Variable(theta0.astype(np.float32))
    opt = Adam([var], learning_rate=0.002, beta1=beta1, beta2=0.99, reg_interval=interval)
    for g in grads:
        opt.apply([tf.constant(g, tf.float32)])
    r = interval / (interval + 1) if interval else 1.0
    theta, m, v = _adam_np(theta0, grads, 0.002 * r, beta1 ** r, 0.99 ** r)
    np.testing.assert_allclose(var.numpy(), theta, rtol=1e-6, atol=1e-7)
    # The fused kernel updates m <- m + (g - m)(1 - beta1): with beta1 = 0 that is g up to one float32 rounding of
    # the previous m (values here are O(1), so an absolute tolerance).
    np.testing.assert_allclose(opt.m[0].numpy(), m, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(opt.v[0].numpy(), v, rtol=1e-5, atol=1e-6)
    assert int(opt.step.numpy()) == 3


# ------------------------------------------------------------------------------- TrainingSteps on tiny networks
def _values(variables):
    return [v.numpy().copy() for v in variables]


def test_non_finite_gradients_skip_the_whole_update():
    steps = tiny_steps()
    variables, opt = steps.G.trainable_variables, steps.g_opt
    before = _values(variables) + _values(opt.m) + _values(opt.v)
    grads = [tf.ones_like(v) for v in variables]
    grads[3] = grads[3] * np.float32("nan")
    norm, finite = steps._apply_g(grads)
    assert not bool(finite) and not np.isfinite(norm.numpy())
    after = _values(variables) + _values(opt.m) + _values(opt.v)
    assert all(np.array_equal(a, b) for a, b in zip(before, after)) and int(opt.step.numpy()) == 0
    grads[3] = tf.ones_like(variables[3])
    _, finite = steps._apply_g(grads)
    assert bool(finite) and int(opt.step.numpy()) == 1


@pytest.mark.parametrize("clip", [None, 0.5, 1e6])
def test_clip_scales_the_averaged_gradients_to_the_global_norm(clip):
    """Gradients summed over 2 slices are averaged, then clipped to `clip` by global norm (seen in Adam's v slot)."""
    steps = tiny_steps(clip=clip)
    variables = steps.D.trainable_variables
    rng = np.random.RandomState(2)
    summed = [rng.randn(*v.shape).astype(np.float32) for v in variables]
    norm, _ = steps._apply_d([tf.constant(g) for g in summed])
    mean = [g / 2.0 for g in summed]
    want_norm = np.sqrt(sum((g.astype(np.float64) ** 2).sum() for g in mean))
    assert norm.numpy() == pytest.approx(want_norm, rel=1e-5)
    scale = 1.0 if clip is None else min(1.0, clip / want_norm)
    beta2 = 0.99 ** (16 / 17)
    for v_slot, g in zip(steps.d_opt.v, mean):
        np.testing.assert_allclose(v_slot.numpy(), (1 - beta2) * (g * scale) ** 2, rtol=2e-5, atol=1e-12)


def test_minibatch_updates_w_avg_and_the_ema_as_closed_forms():
    """w_avg <- mean + 0.995 (w_avg - mean), mean of w[:, :, 0] over batch and components of this minibatch's z;
    Gs <- G + beta (Gs - G) with beta = 0.5^(batch / half-life) for trainables; non-trainables copied."""
    steps = tiny_steps(ema_kimg=0.01)
    G, Gs, opts = steps.G, steps.Gs, steps.opts
    G.w_avg.assign(np.linspace(-1, 1, 8).astype(np.float32))
    avg0, gs0 = G.w_avg.numpy().copy(), {k: v.numpy().copy() for k, v in Gs.variable_dict().items()}
    keys = tf.random.experimental.stateless_split(tf.constant([opts.seed, 3], tf.int64), 4)
    z_g = tf.random.stateless_normal([opts.batch_size, *G.latent_shape], keys[0])
    batch_mean = G.mapping(z_g, None, training=True).numpy()[:, :, 0].mean(axis=(0, 1))
    reals = np.random.RandomState(0).randint(0, 256, [4, 8, 8, 3]).astype(np.uint8)
    steps.minibatch(tf.constant(reals), None, step=3, cur_nimg=12)
    np.testing.assert_allclose(G.w_avg.numpy(), batch_mean + 0.995 * (avg0 - batch_mean), rtol=1e-5, atol=1e-6)
    beta = 0.5 ** (4 / 10.0)
    assert ema_beta(4, 0.01, None, 12) == pytest.approx(beta)
    for name, var in G.variable_dict().items():
        want = var.numpy() + beta * (gs0[name] - var.numpy()) if var.trainable else var.numpy()
        np.testing.assert_allclose(Gs.variable_dict()[name].numpy(), want, rtol=1e-5, atol=1e-6, err_msg=name)


def test_every_training_pass_draws_fresh_noise(monkeypatch):
    """The original trains with randomize_noise=True: G main, D main and the regularizers all synthesize with
    random per-sample noise, never the stored constant buffers (which would make the noise a fixed pattern)."""
    steps = tiny_steps(pl_weight=2.0, d_reg="r2", g_reg_interval=1, d_reg_interval=1)
    real_synthesis, modes = steps.G.synthesis, []

    def spy(*args, **kwargs):
        modes.append(kwargs.get("noise_mode", "const"))
        return real_synthesis(*args, **kwargs)

    monkeypatch.setattr(steps.G, "synthesis", spy)
    reals = np.random.RandomState(0).randint(0, 256, [4, 8, 8, 3]).astype(np.uint8)
    steps.minibatch(tf.constant(reals), None, step=0)
    # 2 rounds x (G main, G reg, D main, D reg with r2 fakes)
    assert len(modes) == 8 and set(modes) == {"random"}, modes
