"""Adam on plain `tf.Variable`s with StyleGAN2's lazy-regularization adjustment (`mb_ratio` in the authors'
`training/training_loop.py`).

Defaults β1 = 0, β2 = 0.99, ε = 1e-8. For a net regularized every I minibatches, `mb_ratio = I / (I + 1)` and the
optimizer uses `lr·mb_ratio`, `β1^mb_ratio`, `β2^mb_ratio` for both its main and its regularization steps, which
share one set of moment slots. Slots and the step counter are variables, so `tf.train.Checkpoint` saves them and a
resumed run continues bit-exactly.
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf


def _adam_kernel(var: tf.Variable, m: tf.Variable, v: tf.Variable, grad: tf.Tensor,
                 scalars: Sequence[tf.Tensor]) -> tf.Operation:
    """One fused update of `var` (plain variables: a replica's copies).

    `scalars` = (beta1^t, beta2^t, lr, beta1, beta2, epsilon), float32 scalars.
    """
    b1p, b2p, lr, b1, b2, eps = scalars
    return tf.raw_ops.ResourceApplyAdam(var=var.handle, m=m.handle, v=v.handle, beta1_power=b1p, beta2_power=b2p,
                                        lr=lr, beta1=b1, beta2=b2, epsilon=eps, grad=grad, use_locking=False,
                                        use_nesterov=False)


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
        """Applies one update; `grads` aligned with `self.vars` (None entries are treated as zeros).

        With t the step after increment: m <- m + (g - m)(1 - beta1); v <- v + (g^2 - v)(1 - beta2);
        var <- var - lr * sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + epsilon).
        """
        self.step.assign_add(1)
        t = tf.cast(self.step, tf.float32)
        beta1, beta2 = tf.constant(self.beta1, tf.float32), tf.constant(self.beta2, tf.float32)
        scalars = (tf.pow(beta1, t), tf.pow(beta2, t), tf.constant(self.learning_rate, tf.float32), beta1, beta2,
                   tf.constant(self.epsilon, tf.float32))
        for var, m, v, g in zip(self.vars, self.m, self.v, grads):
            if g is None:
                g = tf.zeros_like(var)
            if isinstance(var, tf.distribute.DistributedValues):
                var.distribute_strategy.extended.update(
                    var, lambda a, b, c, grad: _adam_kernel(a, b, c, grad, scalars), args=(m, v, g))
            else:
                _adam_kernel(var, m, v, g, scalars)
