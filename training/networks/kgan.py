"""k-GAN component merging (`merge_images` of the authors' `training/networks.py`): k images are generated in parallel
and merged at one resolution.

A 1x1 conv (`merge{r}/weight [1, 1, C, 1]`, no bias) scores each of the k feature maps per pixel; the merge weights
`a [B, k, H, W]` are then
    softmax: softmax over k per pixel;  max: one-hot argmax over k;  sum: all ones (plain sum);
    leaves:  back-to-front sigmoid alpha compositing, α_0 = 1, a_i = α_i ∏_{j>i} (1 − α_j).
With `merge_same` the scores are summed over space first (one weight per component). Features (and the running RGB
image of the skip architecture) are merged as Σ_i a_i x_i; the latents as Σ_i ā_i w_i with ā the weights averaged
over space (normalized for `sum`), and drive the layers after the merge.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from training.networks.layers import Conv
from training.networks.module import NamedModule


class ComponentMerge(NamedModule):
    """Merges `[B·k, H, W, C]` component features into `[B, H, W, C]`.

    Args:
        rng: Initialization RNG.
        ch: Feature channels C at the merge resolution.
        merge_type: `sum`, `softmax`, `max` or `leaves`.
        merge_same: One weight per component (scores summed over space).
    """

    def __init__(self, rng: np.random.Generator, ch: int, merge_type: str, merge_same: bool) -> None:
        super().__init__(rng)
        self.merge_type, self.merge_same = merge_type, merge_same
        self.score = self.add_child("", Conv(rng, ch, 1, 1, use_bias=False))

    def weights(self, x: tf.Tensor, k: int) -> tf.Tensor:
        """Merge weights `[B, k, H, W, 1]` for features `x` `[B·k, H, W, C]`."""
        s = self.score(x)
        shape = tf.shape(s)
        s = tf.reshape(s, [-1, k, shape[1], shape[2], 1])
        if self.merge_same:
            s = tf.broadcast_to(tf.reduce_sum(s, axis=[2, 3], keepdims=True), tf.shape(s))
        if self.merge_type == "softmax":
            return tf.nn.softmax(s, axis=1)
        if self.merge_type == "max":
            return tf.one_hot(tf.argmax(s, axis=1), k, axis=1, dtype=s.dtype)
        if self.merge_type == "leaves":
            alpha = tf.sigmoid(s)
            alpha = tf.concat([tf.ones_like(alpha[:, :1]), alpha[:, 1:]], axis=1)
            keep = tf.math.cumprod(1.0 - alpha, axis=1, exclusive=True, reverse=True)
            return alpha * keep
        return tf.ones_like(s)

    def __call__(self, x: tf.Tensor, y: tf.Tensor | None, ws: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor | None, tf.Tensor]:
        """Merges features `x` `[B·k, H, W, C]`, RGB `y` (same layout, or None) and latents `ws` `[B, k, S, d]`.

        Returns:
            `(x [B, H, W, C], y [B, H, W, 3] or None, merged latents [B, S, d])`.
        """
        k = ws.shape[1]
        a = self.weights(x, k)

        def merge(t: tf.Tensor) -> tf.Tensor:
            shape = tf.shape(t)
            t = tf.reshape(t, [-1, k, shape[1], shape[2], t.shape[-1]])
            return tf.reduce_sum(t * a, axis=1)

        x = merge(x)
        y = None if y is None else merge(y)
        lw = tf.reduce_mean(a, axis=[2, 3, 4])  # [B, k]
        if self.merge_type == "sum":
            lw = lw / float(k)
        merged_ws = tf.einsum("bk,bksd->bsd", lw, ws)
        return x, y, merged_ws
