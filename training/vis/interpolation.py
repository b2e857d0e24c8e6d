"""Latent interpolation paths: spherical in z (per latent component), linear in w.

The original normalized z to unit length before its slerp (changing the samples' magnitudes) and split the frames
into per-component chunks, which failed whenever the number of frames was not a multiple of k. Here the whole path
is one sequence of `density` frames with both end points exact, and z keeps a plausible norm: the direction is
slerped and the length linearly interpolated, independently for every component.
"""

from __future__ import annotations

import numpy as np


def interpolation_steps(density: int) -> np.ndarray:
    """`density` evenly spaced t in [0, 1] (both ends included). Requires density >= 2."""
    if density < 2:
        raise ValueError(f"interpolation density must be >= 2 frames, got {density}")
    return np.linspace(0.0, 1.0, density, dtype=np.float64)


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation of the last axis, per leading index (e.g. per latent component).

    Args:
        a: `[..., d]` start (e.g. z `[K, d]`).
        b: `[..., d]` end, same shape.
        t: `[T]` positions in [0, 1].

    Returns:
        float32 `[T, ..., d]`; `out[0] == a` and `out[-1] == b` up to rounding.
    """
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    t = np.asarray(t, np.float64).reshape((-1,) + (1,) * a64.ndim)
    na = np.linalg.norm(a64, axis=-1, keepdims=True)
    nb = np.linalg.norm(b64, axis=-1, keepdims=True)
    ua = a64 / np.maximum(na, 1e-12)
    ub = b64 / np.maximum(nb, 1e-12)
    omega = np.arccos(np.clip(np.sum(ua * ub, axis=-1, keepdims=True), -1.0, 1.0))
    sin_omega = np.sin(omega)
    small = sin_omega < 1e-6
    safe = np.where(small, 1.0, sin_omega)
    wa = np.where(small, 1.0 - t, np.sin((1.0 - t) * omega) / safe)
    wb = np.where(small, t, np.sin(t * omega) / safe)
    direction = wa * ua + wb * ub
    length = (1.0 - t) * na + t * nb
    return (direction * length).astype(np.float32)


def lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Linear interpolation: `[T, ...]` with `out[i] = a + t[i] (b - a)`."""
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    t = np.asarray(t, np.float64).reshape((-1,) + (1,) * a64.ndim)
    return (a64 + t * (b64 - a64)).astype(np.float32)
