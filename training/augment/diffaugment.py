"""DiffAugment (Zhao et al., NeurIPS 2020): cheap differentiable augmentations of every image D sees.

Policies, always applied (there is no probability `p`), with the paper's strengths, on NHWC images in [-1, 1]:

- `color`: brightness + U(-0.5, 0.5); saturation: each pixel's deviation from its channel mean x U(0, 2);
  contrast: deviation from the image mean x U(0.5, 1.5).
- `translation`: an integer shift, uniform in +-round(0.125 * size) per axis; vacated pixels are 0.
- `cutout`: a rectangle of round(0.5 * size) per axis at a uniform position (clipped at the borders) is set to 0.

Random parameters are per image, from a stateless seed; static shapes (XLA), second-order gradients (R1).
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

POLICIES = ("color", "translation", "cutout")
TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


def parse_policies(text: str) -> tuple[str, ...]:
    """`"color,translation"` -> `("color", "translation")`.

    Raises:
        ValueError: Empty, repeated or unknown policies.
    """
    names = tuple(t.strip() for t in text.split(",") if t.strip())
    unknown = [n for n in names if n not in POLICIES]
    if not names or unknown or len(set(names)) != len(names):
        raise ValueError(f"{text!r}: expected a comma list of distinct policies from {', '.join(POLICIES)}")
    return names


class DiffAugment:
    """`DiffAugment(policies)(images, p, seed)`: the policies in the order given (`p` is ignored).

    Args:
        policies: Policy names or a comma list (`color,translation,cutout`).
    """

    def __init__(self, policies: str | Sequence[str] = POLICIES) -> None:
        self.policies = parse_policies(policies if isinstance(policies, str) else ",".join(policies))

    def __call__(self, images: tf.Tensor, p: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """Augments `[B, H, W, C]` float images (static H, W) with stateless `seed` `[2]`; returns the same shape."""
        del p  # DiffAugment has no probability
        for i, name in enumerate(self.policies):
            s = tf.random.experimental.stateless_fold_in(seed, i + 1)
            images = {"color": _color, "translation": _translation, "cutout": _cutout}[name](images, s)
        return images


def _uniform(images: tf.Tensor, seed: tf.Tensor, salt: int) -> tf.Tensor:
    """U[0, 1) per image, shaped `[B, 1, 1, 1]`."""
    shape = tf.stack([tf.shape(images)[0], 1, 1, 1])
    return tf.random.stateless_uniform(shape, tf.random.experimental.stateless_fold_in(seed, salt))


def _color(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    x = images + (_uniform(images, seed, 1) - 0.5)
    mean = tf.reduce_mean(x, axis=3, keepdims=True)
    x = (x - mean) * (_uniform(images, seed, 2) * 2.0) + mean
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    return (x - mean) * (_uniform(images, seed, 3) + 0.5) + mean


def _randint(batch: tf.Tensor, low: int, high: int, seed: tf.Tensor, salt: int) -> tf.Tensor:
    """Integers uniform in [low, high) `[B, 1]`."""
    seed = tf.random.experimental.stateless_fold_in(seed, salt)
    return tf.random.stateless_uniform(tf.stack([batch, 1]), seed, minval=low, maxval=high, dtype=tf.int32)


def _shift_axis(images: tf.Tensor, shift: tf.Tensor, axis: int) -> tf.Tensor:
    """Per-image shift along `axis` (1 or 2): output index i reads input index i + shift; outside reads 0."""
    n = int(images.shape[axis])
    src = tf.range(n)[None, :] + shift  # [B, n]
    inside = tf.cast((src >= 0) & (src < n), images.dtype)
    out = tf.gather(images, tf.clip_by_value(src, 0, n - 1), axis=axis, batch_dims=1)
    mask_shape = [-1, n, 1, 1] if axis == 1 else [-1, 1, n, 1]
    return out * tf.reshape(inside, mask_shape)


def _translation(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    batch = tf.shape(images)[0]
    for axis in (1, 2):
        reach = int(int(images.shape[axis]) * TRANSLATION_RATIO + 0.5)
        images = _shift_axis(images, _randint(batch, -reach, reach + 1, seed, axis), axis)
    return images


def _cutout(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    batch = tf.shape(images)[0]
    inside = []
    for axis in (1, 2):
        n = int(images.shape[axis])
        size = int(n * CUTOUT_RATIO + 0.5)
        start = _randint(batch, 0, n + (1 - size % 2), seed, axis) - size // 2  # [B, 1]
        index = tf.range(n)[None, :]
        inside.append((index >= start) & (index < start + size))  # [B, n]
    hole = inside[0][:, :, None] & inside[1][:, None, :]
    return images * tf.cast(~hole, images.dtype)[:, :, :, None]
