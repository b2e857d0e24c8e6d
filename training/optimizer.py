"""Adam on plain `tf.Variable`s with StyleGAN2's lazy-regularization adjustment (spec §3.2).

Defaults β1 = 0, β2 = 0.99, ε = 1e-8. For a net regularized every I minibatches, `mb_ratio = I / (I + 1)` and the
optimizer uses `lr·mb_ratio`, `β1^mb_ratio`, `β2^mb_ratio` for both its main and its regularization steps, which
share one set of moment slots. Slots and the step counter are variables, so `tf.train.Checkpoint` saves them and a
resumed run continues bit-exactly.
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf


class Adam(tf.Module):
    """Adam with bias correction over a fixed list of variables.

    Args:
        variables: The trainable variables (order defines the gradient order).
        learning_rate: Base learning rate.
        beta1: First-moment decay.
        beta2: Second-moment decay.
        epsilon: Denominator epsilon.
        reg_interval: Lazy regularization interval I (None or 0: no adjustment).
        name: Module name (also used for the slot variables).
    """

    def __init__(self, variables: Sequence[tf.Variable], learning_rate: float = 0.002, beta1: float = 0.0,
                 beta2: float = 0.99, epsilon: float = 1e-8, reg_interval: int | None = None,
                 name: str = "adam") -> None:
        super().__init__(name=name)
        ratio = reg_interval / (reg_interval + 1.0) if reg_interval else 1.0
        self.learning_rate = learning_rate * ratio
        self.beta1 = beta1 ** ratio
        self.beta2 = beta2 ** ratio
        self.epsilon = epsilon
        self.vars = list(variables)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name=f"{name}_step")
        self.m = [tf.Variable(tf.zeros_like(v), trainable=False, name=f"{name}_m{i}") for i, v in enumerate(self.vars)]
        self.v = [tf.Variable(tf.zeros_like(v), trainable=False, name=f"{name}_v{i}") for i, v in enumerate(self.vars)]

    def apply(self, grads: Sequence[tf.Tensor]) -> None:
        """Applies one update; `grads` aligned with `self.vars` (None entries are treated as zeros)."""
        self.step.assign_add(1)
        t = tf.cast(self.step, tf.float32)
        lr = self.learning_rate * tf.sqrt(1.0 - tf.pow(self.beta2, t))
        if self.beta1 > 0:
            lr = lr / (1.0 - tf.pow(self.beta1, t))
        for var, m, v, g in zip(self.vars, self.m, self.v, grads):
            if g is None:
                g = tf.zeros_like(var)
            m.assign(self.beta1 * m + (1.0 - self.beta1) * g)
            v.assign(self.beta2 * v + (1.0 - self.beta2) * tf.square(g))
            var.assign_sub(lr * m / (tf.sqrt(v) + self.epsilon))
