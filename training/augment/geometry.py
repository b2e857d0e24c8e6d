"""Geometric part of the ADA pipeline: per-sample 3x3 matrices and one resampling per image.

Coordinates: pixel (row i, column j) of an `H x W` image sits at the centred position `x = j - (W - 1) / 2`,
`y = i - (H - 1) / 2` (x to the right, y down). A transform is a 3x3 homogeneous matrix acting on `(x, y, 1)`.
`resample` takes the *inverse* matrix: it maps each output position to the input position it reads, so a chain
of transforms applied in the order T1, T2, ... is `inv(T1) @ inv(T2) @ ...`.

`resample` runs one band-limited resampling: the image is reflection-padded (by `size - 1` pixels per side, the
most a single reflection gives), upsampled 2x with the synthesis low-pass of the CDF 9/7 biorthogonal wavelet, read
bilinearly at the mapped positions of a 2x grid of output samples, and downsampled 2x with the analysis low-pass.
Both filters are symmetric and odd-length (an upsampled sample lies on every pixel centre and midpoint) and they
form a perfect-reconstruction pair, so the identity, flips, 90-degree rotations and integer translations give the
input pixels back up to float rounding; every other transform reads a smooth interpolant. Positions outside the
padded image read zeros. Shapes are static (XLA) and every op has second-order gradients (R1 runs through it).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from dnnlib.tflib.ops.upfirdn_2d import upfirdn_2d

# CDF 9/7 low-pass filters (the JPEG 2000 irreversible wavelet), centre tap first, then the taps at distance 1, 2, ...
_ANALYSIS_HALF = (0.6029490182363579, 0.2668641184428723, -0.07822326652898785, -0.01686411844287495,
                  0.02674875741080976)
_SYNTHESIS_HALF = (1.115087052456994, 0.5912717631142470, -0.05754352622849957, -0.09127176311424948)


def _symmetric(half: tuple[float, ...], total: float) -> np.ndarray:
    """The full symmetric filter from its centre and one side, scaled to sum to `total`."""
    taps = np.array(half[:0:-1] + half, dtype=np.float64)
    return taps * (total / taps.sum())


ANALYSIS = _symmetric(_ANALYSIS_HALF, 1.0)  # 9 taps, DC gain 1: the anti-aliasing filter before decimation
SYNTHESIS = _symmetric(_SYNTHESIS_HALF, 2.0)  # 7 taps, DC gain 2: interpolation after zero insertion
_A_HALF, _S_HALF = len(ANALYSIS) // 2, len(SYNTHESIS) // 2


# ------------------------------------------------------------------------------------------------ matrices
def _matrix(rows: list[list[tf.Tensor | float]], like: tf.Tensor) -> tf.Tensor:
    """Stacks per-sample entries (tensors `[B]` or numbers) into `[B, n, n]`."""
    ones = tf.ones_like(like, tf.float32)
    entries = [tf.cast(e, tf.float32) * ones if isinstance(e, tf.Tensor) else e * ones for row in rows for e in row]
    n = len(rows)
    return tf.reshape(tf.stack(entries, axis=-1), [-1, n, n])


def translate(tx: tf.Tensor, ty: tf.Tensor) -> tf.Tensor:
    """Moves the content by `(tx, ty)` pixels: `[B]`, `[B]` -> `[B, 3, 3]`."""
    return _matrix([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]], tx)


def scale(sx: tf.Tensor, sy: tf.Tensor) -> tf.Tensor:
    """Scales the content about the image centre: `[B]`, `[B]` -> `[B, 3, 3]` (-1 mirrors that axis)."""
    return _matrix([[sx, 0.0, 0.0], [0.0, sy, 0.0], [0.0, 0.0, 1.0]], sx)


def rotate(theta: tf.Tensor) -> tf.Tensor:
    """Rotates the content by `theta` radians about the centre, clockwise as displayed (y points down): `[B]`."""
    c, s = tf.cos(theta), tf.sin(theta)
    return _matrix([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], theta)


def rotate90(k: tf.Tensor) -> tf.Tensor:
    """Rotates by `k` quarter turns counter-clockwise as displayed, as `np.rot90(image, k)` (exact entries): `[B]`."""
    k = tf.math.floormod(tf.cast(k, tf.int32), 4)
    cos = tf.gather(tf.constant([1.0, 0.0, -1.0, 0.0]), k)
    sin = tf.gather(tf.constant([0.0, 1.0, 0.0, -1.0]), k)
    return _matrix([[cos, sin, 0.0], [-sin, cos, 0.0], [0.0, 0.0, 1.0]], cos)


def is_identity(matrices: tf.Tensor) -> tf.Tensor:
    """`[B, n, n]` -> bool `[B]`: the matrix is exactly the identity."""
    eye = tf.eye(int(matrices.shape[-1]), dtype=matrices.dtype)
    return tf.reduce_all(tf.equal(matrices, eye), axis=[1, 2])


# ---------------------------------------------------------------------------------------------- resampling
def reflect_indices(n: int, before: int, after: int) -> np.ndarray:
    """Source indices of a reflection-padded axis of length `n` (edge pixel not repeated, as `np.pad` 'reflect';
    pads longer than `n - 1` reflect again)."""
    idx = np.arange(-before, n + after)
    if n == 1:
        return np.zeros_like(idx)
    period = 2 * (n - 1)
    idx = np.mod(idx, period)
    return np.where(idx >= n, period - idx, idx)


def reflect_pad(images: tf.Tensor, pad_h: int, pad_w: int) -> tf.Tensor:
    """Reflection padding of `[B, H, W, C]` by `pad_h` rows and `pad_w` columns on each side (a gather with constant
    indices: XLA-friendly and differentiable to any order)."""
    h, w = int(images.shape[1]), int(images.shape[2])
    out = tf.gather(images, reflect_indices(h, pad_h, pad_h), axis=1) if pad_h else images
    return tf.gather(out, reflect_indices(w, pad_w, pad_w), axis=2) if pad_w else out


def upsample2x(images: tf.Tensor) -> tf.Tensor:
    """`[B, H, W, C]` -> `[B, 2H - 1, 2W - 1, C]`; output sample `2i` lies on input pixel `i`."""
    return upfirdn_2d(images, np.outer(SYNTHESIS, SYNTHESIS), up=2, pad0=_S_HALF, pad1=_S_HALF - 1)


def downsample2x(samples: tf.Tensor) -> tf.Tensor:
    """`[B, 2H + 7, 2W + 7, C]` -> `[B, H, W, C]`; output pixel `i` is centred on input sample `2i + 4`."""
    return upfirdn_2d(samples, np.outer(ANALYSIS, ANALYSIS), down=2)


def _bilinear(images: tf.Tensor, rows: tf.Tensor, cols: tf.Tensor) -> tf.Tensor:
    """Reads `[B, H, W, C]` at fractional `(rows, cols)` `[B, M]`; positions outside read zeros. -> `[B, M, C]`."""
    h, w, c = int(images.shape[1]), int(images.shape[2]), int(images.shape[3])
    flat = tf.reshape(images, [-1, h * w, c])
    r0, c0 = tf.floor(rows), tf.floor(cols)
    fr, fc = rows - r0, cols - c0
    out = None
    for dr, wr in ((0.0, 1.0 - fr), (1.0, fr)):
        for dc, wc in ((0.0, 1.0 - fc), (1.0, fc)):
            r, q = r0 + dr, c0 + dc
            inside = (r >= 0) & (r <= h - 1) & (q >= 0) & (q <= w - 1)
            index = tf.cast(tf.clip_by_value(r, 0, h - 1) * w + tf.clip_by_value(q, 0, w - 1), tf.int32)
            weight = tf.where(inside, wr * wc, tf.zeros_like(wr))
            term = tf.gather(flat, index, batch_dims=1) * weight[:, :, None]
            out = term if out is None else out + term
    return out


def resample(images: tf.Tensor, g_inv: tf.Tensor) -> tf.Tensor:
    """Applies per-sample geometric transforms given by their inverse matrices.

    Args:
        images: `[B, H, W, C]` float32 (static H, W, C).
        g_inv: `[B, 3, 3]`: output centred position -> input centred position (see the module docstring).

    Returns:
        `[B, H, W, C]`.
    """
    h, w = int(images.shape[1]), int(images.shape[2])
    pad_h, pad_w = h - 1, w - 1
    up = upsample2x(reflect_pad(images, pad_h, pad_w))  # sample 2k <-> padded pixel k
    # The 2x output grid: sample v <-> output pixel (v - 4) / 2 (the analysis filter's reach on both sides).
    ys = (np.arange(2 * h + 2 * _A_HALF - 1) - _A_HALF) / 2.0 - (h - 1) / 2.0
    xs = (np.arange(2 * w + 2 * _A_HALF - 1) - _A_HALF) / 2.0 - (w - 1) / 2.0
    gy, gx = np.meshgrid(ys, xs, indexing="ij")
    grid = tf.constant(np.stack([gx.ravel(), gy.ravel(), np.ones(gx.size)]), tf.float32)  # [3, M]
    src = tf.linalg.matmul(tf.cast(g_inv, tf.float32), grid)  # [B, 3, M]: input centred positions
    cols = 2.0 * (src[:, 0] + ((w - 1) / 2.0 + pad_w))
    rows = 2.0 * (src[:, 1] + ((h - 1) / 2.0 + pad_h))
    samples = _bilinear(up, rows, cols)
    samples = tf.reshape(samples, [-1, len(ys), len(xs), int(images.shape[3])])
    return downsample2x(samples)


def rotation_probability(p: tf.Tensor) -> tf.Tensor:
    """Probability of each of the two arbitrary rotations (before and after the anisotropic scaling) such that an
    image is rotated at least once with probability `p`: `1 - sqrt(1 - p)`."""
    return 1.0 - tf.sqrt(tf.maximum(1.0 - p, 0.0))

