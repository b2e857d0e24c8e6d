"""Perceptual Path Length (StyleGAN2): LPIPS distance between images at t and t + eps along latent paths.

z space: spherical interpolation (slerp) of normalized latents; w space: linear interpolation (lerp) of the
mapped latents `[B, K, L, d]`. End-point sampling uses t = 0 ("end"); "full" draws t ~ U(0, 1). Distances are
LPIPS(VGG16) / eps^2 with eps = 1e-4, images optionally face-cropped, area-downsampled to 256 when larger and
scaled to [0, 255]; the result is the mean over samples between the 1st and 99th percentiles.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from dnnlib.util import UserError
from metrics import images as image_utils


def normalize(v: tf.Tensor) -> tf.Tensor:
    """Unit length along the last axis."""
    return v / tf.sqrt(tf.reduce_sum(tf.square(v), axis=-1, keepdims=True))


def slerp(a: tf.Tensor, b: tf.Tensor, t: tf.Tensor) -> tf.Tensor:
    """Spherical interpolation of `[..., d]` vectors (normalized first); `t` broadcasts against `[..., 1]`."""
    a, b = normalize(a), normalize(b)
    d = tf.clip_by_value(tf.reduce_sum(a * b, axis=-1, keepdims=True), -1.0, 1.0)
    p = t * tf.acos(d)
    c = normalize(b - d * a)
    return normalize(a * tf.cos(p) + c * tf.sin(p))


def lerp(a: tf.Tensor, b: tf.Tensor, t: tf.Tensor) -> tf.Tensor:
    """Linear interpolation a + (b - a) t."""
    return a + (b - a) * t


def prepare_for_lpips(images: tf.Tensor, crop: bool) -> tf.Tensor:
    """Generated `[B, H, W, 3]` in [-1, 1] -> optional face crop, area downsample to <= 256, scaled to [0, 255]."""
    if crop:
        c = images.shape[1] // 8
        images = images[:, c * 3:c * 7, c * 2:c * 6]
    factor = images.shape[1] // 256
    if factor > 1:
        b, h, w, ch = images.shape
        images = tf.reduce_mean(tf.reshape(images, [-1, h // factor, factor, w // factor, factor, ch]), axis=[2, 4])
    return (images + 1.0) * (255.0 / 2.0)


def path_distances(Gs: Any, lpips: Callable[[tf.Tensor, tf.Tensor], tf.Tensor], z: tf.Tensor, t: tf.Tensor,
                   labels: Optional[tf.Tensor], space: str, epsilon: float, crop: bool) -> tf.Tensor:
    """Per-sample scaled LPIPS distances `[B]` for latent pairs `z [2B, K, d]` at positions `t [B]`."""
    z0, z1 = tf.split(z, 2, axis=0)
    lab = None if labels is None else tf.concat([labels, labels], axis=0)
    if space == "z":
        tz = tf.reshape(t, [-1, 1, 1])
        ws = Gs.mapping(tf.concat([slerp(z0, z1, tz), slerp(z0, z1, tz + epsilon)], axis=0), lab)
    else:
        w0, w1 = tf.split(Gs.mapping(z, lab), 2, axis=0)
        tw = tf.reshape(t, [-1] + [1] * (len(w0.shape) - 1))
        ws = tf.concat([lerp(w0, w1, tw), lerp(w0, w1, tw + epsilon)], axis=0)
    imgs = prepare_for_lpips(tf.cast(Gs.synthesis(ws, noise_mode="const"), tf.float32), crop)
    a, b = tf.split(imgs, 2, axis=0)
    return lpips(a, b) / (epsilon ** 2)


def filtered_mean(dist: np.ndarray) -> float:
    """Mean of the distances between the 1st and 99th percentiles (inclusive), as StyleGAN2."""
    lo = np.percentile(dist, 1, method="lower")
    hi = np.percentile(dist, 99, method="higher")
    return float(np.mean(dist[(dist >= lo) & (dist <= hi)]))


def compute_ppl(Gs: Any, lpips: Callable[[tf.Tensor, tf.Tensor], tf.Tensor], num_samples: int,
                epsilon: float = 1e-4, space: str = "w", sampling: str = "end", crop: bool = False,
                batch_size: int = 8, seed: int = 0, strategy: Optional[tf.distribute.Strategy] = None) -> float:
    """PPL of a generator.

    Args:
        Gs: Generator with `mapping(z, labels)`, `synthesis(ws, noise_mode)`, `latent_shape`, `label_dim`.
        lpips: `(a, b) -> [B]` LPIPS distance of images in [0, 255] (e.g. `VGG16.lpips`).
        num_samples: Number of latent pairs.
        epsilon: Step along the path.
        space: "z" (slerp) or "w" (lerp).
        sampling: "end" (t = 0) or "full" (t ~ U(0, 1)).
        crop: Face crop (FFHQ-style) before LPIPS.
        batch_size: Pairs per replica per step.
        seed: Seed of latents, labels and t.
        strategy: Optional tf.distribute strategy (the replicas of the calling process compute distances).
    """
    if space not in ("z", "w") or sampling not in ("end", "full"):
        raise UserError(f"ppl: space must be z|w and sampling end|full, got {space!r}/{sampling!r}")
    rng = np.random.RandomState(seed)
    global_batch = batch_size * image_utils.num_replicas(strategy)
    label_dim = int(getattr(Gs, "label_dim", 0) or 0)

    def step(z: tf.Tensor, t: tf.Tensor, labels: Optional[tf.Tensor] = None) -> tf.Tensor:
        return path_distances(Gs, lpips, z, t, labels, space, epsilon, crop)

    run = image_utils.replicated(strategy, step) if strategy is not None else None
    dists = []
    with tqdm(total=num_samples, desc=f"ppl_{space}{sampling}", unit="pair", leave=False) as bar:
        while sum(len(d) for d in dists) < num_samples:
            z = rng.standard_normal([global_batch * 2, *Gs.latent_shape]).astype(np.float32)
            t = (rng.uniform(0, 1, [global_batch]) if sampling == "full" else np.zeros([global_batch])).astype(np.float32)
            labels = image_utils.random_labels(rng, global_batch, label_dim)
            if run is not None:
                # Each replica needs its own z0/z1 halves: interleave so that array_split keeps pairs together.
                n = image_utils.num_replicas(strategy)
                z0, z1 = np.split(z, 2)
                zr = np.concatenate([np.concatenate([a, b]) for a, b in zip(np.array_split(z0, n), np.array_split(z1, n))])
                args = (zr, t) if labels is None else (zr, t, labels)
                d = run(*args)
            else:
                d = step(tf.constant(z), tf.constant(t), None if labels is None else tf.constant(labels)).numpy()
            dists.append(np.asarray(d, np.float64))
            bar.update(len(d))
    return filtered_mean(np.concatenate(dists)[:num_samples])
