"""GAN losses and regularizers (as the authors' `training/loss.py`), as pure functions of networks and batches.

G losses: `logistic_ns` softplus(−D(G(z))), `logistic` −softplus(D(G(z))), `hinge` −D(G(z)) (the standard generator
hinge loss; the original's −max(0, 1 + D) has no gradient once D(G(z)) < −1), `wgan` −D(G(z)).
D losses: `logistic` softplus(D(fake)) + softplus(−D(real)); `hinge` relu(1 + D(fake)) + relu(1 − D(real));
`wgan` D(fake) − D(real) + 0.001·D(real)².
D regularizers: `r1` (γ/2)·‖∇ₓD(x_real)‖², `r2` the same on fakes, `gp` WGAN-GP (γ/target²)(‖∇D(x̂)‖ − target)² on
random interpolates with target 1, `non` none. Path-length regularization (StyleGAN2) for G, optional.
"""

from __future__ import annotations

from typing import Callable, Optional

import tensorflow as tf

from training.options import D_LOSSES, D_REGS, G_LOSSES

WGAN_EPSILON = 0.001
GP_TARGET = 1.0


def generator_loss(kind: str, fake_scores: tf.Tensor) -> tf.Tensor:
    """Per-sample G loss `[B]` from D's scores on fakes `[B, 1]`."""
    s = fake_scores[:, 0]
    if kind == "logistic_ns":
        return tf.nn.softplus(-s)
    if kind == "logistic":
        return -tf.nn.softplus(s)
    if kind in ("hinge", "wgan"):
        return -s
    raise ValueError(f"unknown G loss {kind!r}; expected one of {G_LOSSES}")


def discriminator_loss(kind: str, real_scores: tf.Tensor, fake_scores: tf.Tensor) -> tf.Tensor:
    """Per-sample D loss `[B]` from scores on reals and fakes (`[B, 1]` each)."""
    r, f = real_scores[:, 0], fake_scores[:, 0]
    if kind == "logistic":
        return tf.nn.softplus(f) + tf.nn.softplus(-r)
    if kind == "hinge":
        return tf.nn.relu(1.0 + f) + tf.nn.relu(1.0 - r)
    if kind == "wgan":
        return f - r + WGAN_EPSILON * tf.square(r)
    raise ValueError(f"unknown D loss {kind!r}; expected one of {D_LOSSES}")


def _grad_sq_norm(d_fn: Callable[[tf.Tensor], tf.Tensor], x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(scores `[B, 1]`, ‖∇ₓ Σ D(x)‖² per sample `[B]`), differentiable w.r.t. D's variables."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        scores = d_fn(x)
        total = tf.reduce_sum(scores)
    grad = tape.gradient(total, x)
    return scores, tf.reduce_sum(tf.square(grad), axis=list(range(1, len(x.shape))))


def discriminator_reg(kind: str, d_fn: Callable[[tf.Tensor], tf.Tensor], reals: tf.Tensor, fakes: tf.Tensor,
                      gamma: float, seed: Optional[tf.Tensor] = None) -> tuple[tf.Tensor, tf.Tensor]:
    """Per-sample D regularizer `[B]` and the raw squared gradient norm `[B]` (for logging).

    Args:
        kind: `r1`, `r2`, `gp` or `non`.
        d_fn: Images -> scores `[B, 1]`.
        reals: Real images `[B, H, W, C]` (float).
        fakes: Generated images (treated as constants).
        gamma: Regularization weight γ.
        seed: Stateless seed `[2]` for the `gp` interpolation.
    """
    if kind == "non":
        zeros = tf.zeros([tf.shape(reals)[0]])
        return zeros, zeros
    if kind in ("r1", "r2"):
        _, sq = _grad_sq_norm(d_fn, reals if kind == "r1" else tf.stop_gradient(fakes))
        return sq * (gamma * 0.5), sq
    if kind == "gp":
        shape = [tf.shape(reals)[0], 1, 1, 1]
        mix = tf.random.uniform(shape) if seed is None else tf.random.stateless_uniform(shape, seed)
        interp = reals + (tf.stop_gradient(fakes) - reals) * mix
        _, sq = _grad_sq_norm(d_fn, interp)
        return tf.square(tf.sqrt(sq + 1e-8) - GP_TARGET) * (gamma / GP_TARGET ** 2), sq
    raise ValueError(f"unknown D regularizer {kind!r}; expected one of {D_REGS}")


def path_length_penalty(synth_fn: Callable[[tf.Tensor], tf.Tensor], ws: tf.Tensor, pl_mean: tf.Variable,
                        decay: float = 0.01, seed: Optional[tf.Tensor] = None) -> tuple[tf.Tensor, tf.Tensor]:
    """StyleGAN2 path-length penalty per sample `[B]` and the new running mean.

    `‖J_wᵀ y‖` with y ~ N(0, I)/√(H·W) projected onto the images; penalty `(‖J_wᵀ y‖ − a)²` where `a` is the
    running mean (updated with `decay`). The caller assigns the returned mean to `pl_mean` after the step.
    """
    with tf.GradientTape() as tape:
        tape.watch(ws)
        images = synth_fn(ws)
        shape = tf.shape(images)
        noise = tf.random.normal(shape) if seed is None else tf.random.stateless_normal(shape, seed)
        noise = noise / tf.sqrt(tf.cast(shape[1] * shape[2], tf.float32))
        total = tf.reduce_sum(images * noise)
    grads = tape.gradient(total, ws)  # [B, K, S, d]
    lengths = tf.sqrt(tf.reduce_mean(tf.reduce_sum(tf.square(grads), axis=3), axis=[1, 2]))
    new_mean = pl_mean + decay * (tf.reduce_mean(lengths) - pl_mean)
    return tf.square(lengths - tf.stop_gradient(new_mean)), new_mean
