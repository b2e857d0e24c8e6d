"""The augmentation of a run (`--aug`) and ADA's adaptive probability p.

`--aug noaug` (default): D sees the images as they are. `fixed`: the ADA pipeline (`--augpipe`) with a constant
`--p`. `ada`: the same pipeline with p adapted to D's overfitting: the heuristic `r_t = E[sign(D(reals))]` is
accumulated over `--ada-interval` minibatches, then `p <- clip(p + sign(r_t - target) * batch * interval /
(ada_kimg * 1000), 0, 1)`, so p can move from 0 to 1 in `--ada-kimg` thousand images. `diffaugment`: DiffAugment's
policies (`--diffaugment`), no p.

`AugmentState` holds p and the accumulator as variables of the training checkpoint, so a resumed run continues
them exactly.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import tensorflow as tf

from dnnlib.util import UserError
from training.augment.pipeline import PIPES, AdaPipeline
from training.augment.modes import AUG_MODES
from training.augment.diffaugment import DiffAugment, parse_policies

# images [B, H, W, C] float, p scalar, seed [2] int64 -> augmented images
Augment = Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tf.Tensor]


def check_augment_options(opts: Any) -> None:
    """Checks the choices among the augmentation fields of `TrainingOptions` (`aug`, `augpipe`, `diffaugment`; the
    numbers `p`, `target`, `ada_kimg`, `ada_interval` are checked by the ranges their fields declare).

    Raises:
        UserError: One line naming the flag, the value and what it must be.
    """
    if opts.aug not in AUG_MODES:
        raise UserError(f"--aug {opts.aug}: choose one of {', '.join(AUG_MODES)}")
    if opts.augpipe not in PIPES:
        raise UserError(f"--augpipe {opts.augpipe}: choose one of {', '.join(PIPES)}")
    try:
        parse_policies(opts.diffaugment)
    except ValueError as exc:
        raise UserError(f"--diffaugment {exc}") from None


def build_augment(opts: Any, channels: int) -> Optional[Augment]:
    """The augmentation the options ask for (`opts.aug`, `opts.augpipe`, `opts.diffaugment`); None for `noaug`."""
    if opts.aug in ("ada", "fixed"):
        return AdaPipeline(opts.augpipe, channels)
    if opts.aug == "diffaugment":
        return DiffAugment(opts.diffaugment)
    return None


def ada_adjustment(batch_size: int, interval: int, ada_kimg: float) -> float:
    """The size of one p step: `batch_size * interval / (ada_kimg * 1000)`."""
    return batch_size * interval / (ada_kimg * 1000.0)


class AugmentState(tf.Module):
    """p and ADA's running sums since the last adjustment (all float32 variables, saved in the checkpoint).

    Args:
        p: The initial augmentation probability.
    """

    def __init__(self, p: float = 0.0) -> None:
        super().__init__(name="augment")
        self.p = tf.Variable(float(p), dtype=tf.float32, trainable=False, name="p")
        self.sign_sum = tf.Variable(0.0, dtype=tf.float32, trainable=False, name="sign_sum")
        self.count = tf.Variable(0.0, dtype=tf.float32, trainable=False, name="count")

    def accumulate(self, mean_sign: tf.Tensor, count: int) -> None:
        """Adds one minibatch: the mean of sign(D(reals)) over its `count` real images."""
        total = tf.round(tf.cast(mean_sign, tf.float32) * float(count))  # an integer: exact in float32
        self.sign_sum.assign_add(total)
        self.count.assign_add(float(count))

    def adjust(self, target: float, step: float) -> float:
        """Moves p by `step` towards less (r_t < target) or more (r_t > target) augmentation, clips it to [0, 1]
        and resets the sums; returns r_t (0 if nothing was accumulated)."""
        rt = self.sign_sum / tf.maximum(self.count, 1.0)
        direction = tf.sign(rt - target)
        self.p.assign(tf.clip_by_value(self.p + direction * step, 0.0, 1.0))
        self.sign_sum.assign(0.0)
        self.count.assign(0.0)
        return float(rt)
