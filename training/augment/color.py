"""Pixel-value transforms of the ADA pipeline: colour matrices, image-space filtering, noise, cutout.

Images are NHWC float32 in about [-1, 1] (0 is mid-grey). Colour transforms are 4x4 homogeneous matrices acting on
(R, G, B, 1) per sample, composed by matrix products and applied once (`apply_color`). Luma here is the mean of
R, G and B: the axis `v = (1, 1, 1) / sqrt(3)`; hue rotations turn colours about it, saturation scales the part
orthogonal to it, the luma flip mirrors along it.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from training.augment.geometry import reflect_indices

LUMA = np.full(3, 1.0 / math.sqrt(3.0))
# Image-space filter bank: 4 octave bands, lowest first, and the power an image is assumed to have in each (a
# 1/f spectrum); per-sample band gains are renormalised so this expected power is kept.
BAND_POWER = np.array([10.0, 1.0, 1.0, 1.0]) / 13.0


def _color_matrix(block: tf.Tensor, shift: tf.Tensor | None = None) -> tf.Tensor:
    """`[B, 3, 3]` linear part (+ `[B, 3]` offset) -> `[B, 4, 4]` homogeneous matrix."""
    shift = tf.zeros_like(block[:, :, 0]) if shift is None else shift
    top = tf.concat([block, shift[:, :, None]], axis=2)
    bottom = tf.tile(tf.constant([[[0.0, 0.0, 0.0, 1.0]]]), [tf.shape(block)[0], 1, 1])
    return tf.concat([top, bottom], axis=1)


def _per_sample(x: tf.Tensor) -> tf.Tensor:
    return tf.cast(x, tf.float32)[:, None, None]


def brightness(b: tf.Tensor) -> tf.Tensor:
    """Adds `b` `[B]` to every channel -> `[B, 4, 4]`."""
    b = tf.cast(b, tf.float32)
    return _color_matrix(tf.eye(3, batch_shape=tf.shape(b)), tf.stack([b, b, b], axis=1))


def contrast(c: tf.Tensor) -> tf.Tensor:
    """Multiplies every channel by `c` `[B]` (about mid-grey 0) -> `[B, 4, 4]`."""
    return _color_matrix(tf.eye(3) * _per_sample(c))


def lumaflip(i: tf.Tensor) -> tf.Tensor:
    """`i` `[B]` in {0, 1}: 1 mirrors each colour along the luma axis (grey g -> -g, chroma kept) -> `[B, 4, 4]`."""
    vvt = tf.constant(np.outer(LUMA, LUMA), tf.float32)
    return _color_matrix(tf.eye(3) - 2.0 * vvt * _per_sample(i))


def hue_rotation(theta: tf.Tensor) -> tf.Tensor:
    """Rotates colours by `theta` `[B]` radians about the luma axis (luma kept; 2*pi/3 maps R -> G -> B -> R)."""
    vvt = tf.constant(np.outer(LUMA, LUMA), tf.float32)
    cross = tf.constant([[0.0, -LUMA[2], LUMA[1]], [LUMA[2], 0.0, -LUMA[0]], [-LUMA[1], LUMA[0], 0.0]], tf.float32)
    c, s = _per_sample(tf.cos(theta)), _per_sample(tf.sin(theta))
    return _color_matrix(tf.eye(3) * c + cross * s + vvt * (1.0 - c))


def saturation(s: tf.Tensor) -> tf.Tensor:
    """Scales each colour's distance from its grey (the luma axis) by `s` `[B]` -> `[B, 4, 4]`."""
    chroma = tf.constant(np.eye(3) - np.outer(LUMA, LUMA), tf.float32)  # written so that s = 1 is exactly I
    return _color_matrix(tf.eye(3) + chroma * (_per_sample(s) - 1.0))


def apply_color(images: tf.Tensor, matrices: tf.Tensor) -> tf.Tensor:
    """Applies `[B, 4, 4]` colour matrices to `[B, H, W, C]` images (C = 3; C = 1: the grey image (x, x, x) is
    transformed and its luma kept)."""
    channels = int(images.shape[3])
    if channels == 3:
        out = tf.einsum("bij,bhwj->bhwi", matrices[:, :3, :3], images)
        return out + matrices[:, None, None, :3, 3]
    if channels == 1:
        rows = tf.reduce_mean(matrices[:, :3, :], axis=1)  # [B, 4]
        gain = tf.reduce_sum(rows[:, :3], axis=1)
        return images * gain[:, None, None, None] + rows[:, None, None, 3:]
    raise ValueError(f"colour transforms need 1 or 3 channels, got {channels}")


# ------------------------------------------------------------------------------------------- image filter
def band_filters() -> np.ndarray:
    """The 1-D filter bank `[4, 15]` (lowest band first) of the image-space filter: an undecimated (a trous)
    octave decomposition with the binomial half-band low-pass [1, 2, 1] / 4; the bands sum to a unit impulse."""
    lowpass = np.array([1.0, 2.0, 1.0]) / 4.0
    smooth = [np.array([1.0])]
    for level in range(3):
        dilated = np.zeros(2 ** level * 2 + 1)
        dilated[::2 ** level] = lowpass
        smooth.append(np.convolve(smooth[-1], dilated))
    width = len(smooth[-1])

    def centred(f: np.ndarray) -> np.ndarray:
        pad = (width - len(f)) // 2
        return np.pad(f, (pad, pad))

    full = [centred(f) for f in smooth]  # delta, A1, A2, A3: ever smoother
    return np.stack([full[3], full[2] - full[3], full[1] - full[2], full[0] - full[1]])


def band_gains(amplify: tf.Tensor) -> tf.Tensor:
    """Per-sample gains `[B, 4]` from per-band amplifications `[B, 4]` (1 = unchanged), each renormalised so the
    expected image power (`BAND_POWER`) is kept, and multiplied together."""
    power = tf.constant(BAND_POWER, tf.float32)
    gains = tf.ones_like(amplify)
    for band in range(4):
        t = tf.concat([tf.ones_like(amplify[:, :band]), amplify[:, band:band + 1],
                       tf.ones_like(amplify[:, band + 1:])], axis=1)
        gains = gains * t / tf.sqrt(tf.reduce_sum(power * tf.square(t), axis=1, keepdims=True))
    return gains


def filter_images(images: tf.Tensor, gains: tf.Tensor) -> tf.Tensor:
    """Filters `[B, H, W, C]` separably (rows, then columns; reflection at the borders) with the per-sample filter
    `gains @ band_filters()` (`gains` `[B, 4]`)."""
    bank = band_filters()
    taps = tf.linalg.matmul(tf.cast(gains, tf.float32), tf.constant(bank, tf.float32))  # [B, T]
    half = bank.shape[1] // 2
    out = images
    for axis in (1, 2):
        n = int(out.shape[axis])
        padded = tf.gather(out, reflect_indices(n, half, half), axis=axis)
        acc = None
        for t in range(bank.shape[1]):
            index = [slice(None)] * 4
            index[axis] = slice(t, t + n)
            term = padded[tuple(index)] * taps[:, t, None, None, None]
            acc = term if acc is None else acc + term
        out = acc
    return out


# ------------------------------------------------------------------------------------------ noise, cutout
def add_noise(images: tf.Tensor, sigma: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Adds Gaussian noise of per-sample standard deviation `sigma` `[B]` (stateless `seed` `[2]`)."""
    noise = tf.random.stateless_normal(tf.shape(images), seed)
    return images + noise * tf.cast(sigma, tf.float32)[:, None, None, None]


def cutout_mask(shape: tuple[int, int], centres: tf.Tensor, size: float) -> tf.Tensor:
    """`[B, H, W, 1]` mask, 0 inside a rectangle of `size` x `size` (fractions of the height and width) around
    `centres` `[B, 2]` (x, y in [0, 1], pixel centres at (j + 0.5) / W), 1 elsewhere."""
    h, w = shape
    ys = tf.constant((np.arange(h) + 0.5) / h, tf.float32)
    xs = tf.constant((np.arange(w) + 0.5) / w, tf.float32)
    outside_x = tf.abs(xs[None, :] - centres[:, 0:1]) >= size / 2  # [B, W]
    outside_y = tf.abs(ys[None, :] - centres[:, 1:2]) >= size / 2  # [B, H]
    keep = outside_y[:, :, None] | outside_x[:, None, :]
    return tf.cast(keep, tf.float32)[:, :, :, None]
