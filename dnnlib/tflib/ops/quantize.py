"""Generator output -> uint8 pixels, the one conversion shared by samples, exports and metrics."""

from __future__ import annotations

import tensorflow as tf


def quantize(images: tf.Tensor) -> tf.Tensor:
    """float images `[B, H, W, C]` in about [-1, 1] -> uint8 via `round(clip((x + 1) * 127.5, 0, 255))`."""
    x = tf.clip_by_value((tf.cast(images, tf.float32) + 1.0) * 127.5, 0.0, 255.0)
    return tf.cast(tf.round(x), tf.uint8)
