"""Dynamic loss scaling for float16 training (`--precision fp16`).

The loss is multiplied by a scale S before the backward pass, so that small gradients flowing back through the
float16 layers do not underflow, and the float32 gradients are divided by S before the update. After
`growth_interval` consecutive steps with finite gradients S doubles; a step whose gradients are not finite is skipped
(the existing rule of `training.steps`), S halves and the count of finite steps restarts. The decision is taken on
the gradients after the cross-replica sum, so every replica (and worker) skips the same steps.

The state (S, the finite-step count, the total of skipped steps) is variables: `attach` stores it on the optimizer it
scales (`opt.loss_scale`), so the checkpoint that saves the optimizer saves it and a resume continues bit-exactly
(`training.formats.checkpoint` restores checkpoints written without it, e.g. by fp32 runs, with a fresh state).
"""

from __future__ import annotations

import tensorflow as tf

# StyleGAN2-ADA's TF code starts its loss scale at 2^6 and doubles it every 2000 finite steps, as here. (2^15, the
# usual default elsewhere, overflowed D's float16 gradients in the first minibatches of a tiny GANformer.)
INITIAL_SCALE = 2.0 ** 6
GROWTH_INTERVAL = 2000
MIN_SCALE = 2.0 ** -14  # below this the float32 loss itself is no longer the problem
MAX_SCALE = 2.0 ** 24
ATTRIBUTE = "loss_scale"  # the optimizer attribute holding the state (`training.formats.checkpoint.OPTIONAL_CHILDREN`)


class LossScale(tf.Module):
    """Dynamic loss-scale state of one optimizer.

    Args:
        initial_scale: Starting scale S (a power of two keeps the scaling exact).
        growth_interval: Finite steps in a row after which S doubles.
        name: Module name.
    """

    def __init__(self, initial_scale: float = INITIAL_SCALE, growth_interval: int = GROWTH_INTERVAL,
                 name: str = "loss_scale") -> None:
        super().__init__(name=name)
        self.growth_interval = int(growth_interval)
        self.scale = tf.Variable(float(initial_scale), dtype=tf.float32, trainable=False, name="scale")
        self.good_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="good_steps")
        self.skipped = tf.Variable(0, dtype=tf.int64, trainable=False, name="skipped")

    def scale_loss(self, loss: tf.Tensor) -> tf.Tensor:
        """`loss * S` (a float32 scalar or tensor)."""
        return loss * tf.cast(self.scale, loss.dtype)

    def unscale(self, grads: list[tf.Tensor]) -> list[tf.Tensor]:
        """Gradients of the scaled loss divided by S (float32, any shapes)."""
        inv = 1.0 / self.scale
        return [g * inv for g in grads]

    def update(self, finite: tf.Tensor) -> None:
        """Updates the state after one step whose (unscaled, summed) gradients were `finite` (bool scalar)."""
        good = self.good_steps + 1
        grow = tf.logical_and(finite, good >= self.growth_interval)
        scale = tf.where(grow, tf.minimum(self.scale * 2.0, MAX_SCALE), self.scale)
        self.scale.assign(tf.where(finite, scale, tf.maximum(self.scale * 0.5, MIN_SCALE)))
        self.good_steps.assign(tf.where(tf.logical_and(finite, tf.logical_not(grow)), good, tf.zeros_like(good)))
        self.skipped.assign_add(tf.where(finite, tf.constant(0, tf.int64), tf.constant(1, tf.int64)))


def attach(optimizer: tf.Module, state: LossScale) -> LossScale:
    """Stores `state` as `optimizer.loss_scale` (so checkpoints of the optimizer hold it); returns it."""
    setattr(optimizer, ATTRIBUTE, state)
    return state
