"""Generator output -> uint8 pixels, the one conversion shared by samples, exports and metrics.

`round(clip((x + 1) * 127.5, 0, 255))` in float32, rounding half to even, is written once (`_to_pixels`) and run
by TensorFlow (`quantize`, inside graphs) or NumPy (`quantize_numpy`, on arrays already fetched): both give the
same bytes for every finite or infinite input.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import tensorflow as tf

PIXEL_OFFSET = 1.0  # generator output in about [-1, 1] ...
PIXEL_SCALE = 127.5  # ... to [0, 255]
PIXEL_MAX = 255.0


def _to_pixels(x: Any, clip: Callable[[Any, float, float], Any], round_half_even: Callable[[Any], Any],
               to_uint8: Callable[[Any], Any]) -> Any:
    """The conversion, given float32 `x` and one framework's clip, round-half-to-even and uint8 cast."""
    return to_uint8(round_half_even(clip((x + PIXEL_OFFSET) * PIXEL_SCALE, 0.0, PIXEL_MAX)))


def quantize(images: tf.Tensor) -> tf.Tensor:
    """float images `[B, H, W, C]` in about [-1, 1] -> uint8 via `round(clip((x + 1) * 127.5, 0, 255))`."""
    return _to_pixels(tf.cast(images, tf.float32), tf.clip_by_value, tf.round, lambda v: tf.cast(v, tf.uint8))


def quantize_numpy(images: np.ndarray) -> np.ndarray:
    """`quantize` on NumPy arrays: float `[..., H, W, C]` in about [-1, 1] -> uint8 of the same shape."""
    return _to_pixels(np.asarray(images, dtype=np.float32), np.clip, np.rint, lambda v: v.astype(np.uint8))
