"""Adaptive discriminator augmentation (StyleGAN2-ADA, Karras et al. 2020): the augmentation pipeline.

Every image D sees goes through `AdaPipeline(images, p, seed)`. Each transform of the chosen pipeline is applied to
each image independently with probability `p` (its own random parameters per image, from a stateless seed), in this
order, with ADA's default strengths:

- 'b' (blit): x-flip; rotation by a random multiple of 90 degrees; integer translation, uniform in +-0.125 of the
  size (rounded to pixels).
- 'g' (geometric): isotropic scaling, log2-normal with sigma 0.2 (log-normal, sigma = 0.2 ln 2); arbitrary rotation,
  uniform angle, once before and once after the anisotropic scaling, each with probability `1 - sqrt(1 - p)` so an
  image is rotated with probability `p`; anisotropic scaling (sx = s, sy = 1/s, s log2-normal with sigma 0.2);
  fractional translation, normal with sigma 0.125 of the size.
- 'c' (colour): brightness (+N(0, 0.2^2)), contrast (x 2^N(0, 0.5^2)), luma flip (half of the applied ones), hue
  rotation (uniform angle), saturation (x 2^N(0, 1)).
- 'f' (image-space filtering): each of 4 frequency bands amplified by 2^N(0, 1), expected power kept.
- 'n' (noise): additive Gaussian noise, per-image sigma |N(0, 0.1^2)|.
- 'c' (cutout, last): a square of half the image size at a uniform position set to 0.

Geometric transforms ('b', 'g') are composed into one matrix per image and applied once
(`training.augment.geometry.resample`); colour transforms into one 4x4 matrix. An image that no transform of a
stage touched leaves that stage bit-exactly unchanged, so `p = 0` is the identity. The pipeline is pure TensorFlow
with static shapes (XLA) and second-order gradients (R1 runs through it).
"""

from __future__ import annotations

import math
from typing import Mapping, Optional

import tensorflow as tf

from training.augment import color
from training.augment import geometry as geom

# Transform -> strength (a multiplier of p) of each named pipeline, as the ADA paper's `--augpipe` names.
_GROUPS = {
    "blit": dict(xflip=1.0, rotate90=1.0, xint=1.0),
    "geom": dict(scale=1.0, rotate=1.0, aniso=1.0, xfrac=1.0),
    "color": dict(brightness=1.0, contrast=1.0, lumaflip=1.0, hue=1.0, saturation=1.0),
    "filter": dict(imgfilter=1.0),
    "noise": dict(noise=1.0),
    "cutout": dict(cutout=1.0),
}
PIPES: Mapping[str, dict[str, float]] = {
    **_GROUPS,
    "bg": {**_GROUPS["blit"], **_GROUPS["geom"]},
    "bgc": {**_GROUPS["blit"], **_GROUPS["geom"], **_GROUPS["color"]},
    "bgcf": {**_GROUPS["blit"], **_GROUPS["geom"], **_GROUPS["color"], **_GROUPS["filter"]},
    "bgcfn": {**_GROUPS["blit"], **_GROUPS["geom"], **_GROUPS["color"], **_GROUPS["filter"], **_GROUPS["noise"]},
    "bgcfnc": {k: v for group in _GROUPS.values() for k, v in group.items()},
}
TRANSFORMS = tuple(PIPES["bgcfnc"])

# ADA's default magnitudes.
XINT_MAX = 0.125  # integer translation, fraction of the size
SCALE_STD = 0.2  # log2 of the isotropic scale
ROTATE_MAX = 1.0  # arbitrary rotation, fraction of a half turn
ANISO_STD = 0.2  # log2 of the anisotropic scale
XFRAC_STD = 0.125  # fractional translation, fraction of the size
BRIGHTNESS_STD = 0.2
CONTRAST_STD = 0.5  # log2
HUE_MAX = 1.0  # fraction of a half turn
SATURATION_STD = 1.0  # log2
IMGFILTER_STD = 1.0  # log2 of each band's amplification
NOISE_STD = 0.1
CUTOUT_SIZE = 0.5  # fraction of the size


class _Draws:
    """Independent per-sample random draws from one stateless seed (one sub-seed per call)."""

    def __init__(self, seed: tf.Tensor, batch: tf.Tensor) -> None:
        self.seed, self.batch, self.calls = seed, batch, 0

    def next_seed(self) -> tf.Tensor:
        """A fresh stateless seed `[2]`."""
        self.calls += 1
        return tf.random.experimental.stateless_fold_in(self.seed, self.calls)

    def uniform(self, *extra: int) -> tf.Tensor:
        """U[0, 1) of shape `[B, *extra]`."""
        return tf.random.stateless_uniform(tf.stack([self.batch, *extra]), self.next_seed())

    def normal(self, *extra: int) -> tf.Tensor:
        """N(0, 1) of shape `[B, *extra]`."""
        return tf.random.stateless_normal(tf.stack([self.batch, *extra]), self.next_seed())

    def gate(self, prob: tf.Tensor, *extra: int) -> tf.Tensor:
        """bool `[B, *extra]`: True with probability `prob`."""
        return self.uniform(*extra) < prob


def _exp2(x: tf.Tensor) -> tf.Tensor:
    return tf.exp(x * math.log(2.0))


def _masked(gate: tf.Tensor, value: tf.Tensor, identity: float) -> tf.Tensor:
    return tf.where(gate, value, tf.fill(tf.shape(value), identity))


class AdaPipeline:
    """The ADA augmentation pipeline `--augpipe NAME` (no variables: `p` comes with every call).

    Args:
        name: One of `PIPES` (`bgc`: ADA's default; `bgcfnc`: everything).
        channels: Image channels (colour transforms need 1 or 3).
        strength: Instead of the named pipeline's, these transforms (`TRANSFORMS`) with these multipliers of p.

    Raises:
        ValueError: Unknown name or transform, or colour transforms on images with other than 1 or 3 channels.
    """

    def __init__(self, name: str = "bgc", channels: int = 3, strength: Optional[Mapping[str, float]] = None) -> None:
        if name not in PIPES:
            raise ValueError(f"unknown augmentation pipeline {name!r}; choose one of {', '.join(PIPES)}")
        self.name, self.strength = name, dict(PIPES[name] if strength is None else strength)
        unknown = sorted(set(self.strength) - set(TRANSFORMS))
        if unknown:
            raise ValueError(f"unknown transform(s) {', '.join(unknown)}; choose from {', '.join(TRANSFORMS)}")
        self.has_color = any(k in self.strength for k in _GROUPS["color"])
        if self.has_color and channels not in (1, 3):
            raise ValueError(f"the colour transforms of '{name}' need 1 or 3 channels, not {channels}")

    def _on(self, name: str) -> bool:
        return self.strength.get(name, 0.0) > 0

    def __call__(self, images: tf.Tensor, p: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """Augments `[B, H, W, C]` float images (static H, W, C) with probability `p` (scalar) per transform, using
        stateless `seed` (`[2]` int64). Returns `[B, H, W, C]`."""
        p = tf.cast(p, tf.float32)
        draws = _Draws(seed, tf.shape(images)[0])
        h, w = int(images.shape[1]), int(images.shape[2])
        if any(self._on(k) for k in (*_GROUPS["blit"], *_GROUPS["geom"])):
            g_inv = self.geometry(draws, p, h, w)
            images = tf.where(geom.is_identity(g_inv)[:, None, None, None], images, geom.resample(images, g_inv))
        if self.has_color:
            m = self.color(draws, p)
            images = tf.where(geom.is_identity(m)[:, None, None, None], images, color.apply_color(images, m))
        if self._on("imgfilter"):
            amplify = _exp2(draws.normal(4) * IMGFILTER_STD)
            gate = draws.gate(p * self.strength["imgfilter"], 4)
            filtered = color.filter_images(images, color.band_gains(_masked(gate, amplify, 1.0)))
            images = tf.where(tf.reduce_any(gate, axis=1)[:, None, None, None], filtered, images)
        if self._on("noise"):
            sigma = _masked(draws.gate(p * self.strength["noise"]), tf.abs(draws.normal()) * NOISE_STD, 0.0)
            noisy = color.add_noise(images, sigma, draws.next_seed())
            images = tf.where((sigma > 0)[:, None, None, None], noisy, images)
        if self._on("cutout"):
            gate = draws.gate(p * self.strength["cutout"])
            mask = color.cutout_mask((h, w), draws.uniform(2), CUTOUT_SIZE)
            images = tf.where(gate[:, None, None, None], images * mask, images)
        return images

    def geometry(self, draws: _Draws, p: tf.Tensor, h: int, w: int) -> tf.Tensor:
        """The composed inverse geometric matrix `[B, 3, 3]` of the blit and geometric transforms."""
        s = self.strength
        batch = draws.batch
        g_inv = tf.eye(3, batch_shape=[batch])
        if self._on("xflip"):
            flip = _masked(draws.gate(p * s["xflip"]), tf.floor(draws.uniform() * 2), 0.0)
            g_inv = g_inv @ geom.scale(1.0 - 2.0 * flip, tf.ones_like(flip))
        if self._on("rotate90"):
            quarter = _masked(draws.gate(p * s["rotate90"]), tf.floor(draws.uniform() * 4), 0.0)
            g_inv = g_inv @ geom.rotate90(-quarter)
        if self._on("xint"):
            t = _masked(draws.gate(p * s["xint"], 1), (draws.uniform(2) * 2 - 1) * XINT_MAX, 0.0)
            g_inv = g_inv @ geom.translate(-tf.round(t[:, 0] * w), -tf.round(t[:, 1] * h))
        if self._on("scale"):
            iso = _masked(draws.gate(p * s["scale"]), _exp2(draws.normal() * SCALE_STD), 1.0)
            g_inv = g_inv @ geom.scale(1.0 / iso, 1.0 / iso)
        p_rot = geom.rotation_probability(p * s.get("rotate", 0.0))
        if self._on("rotate"):
            theta = _masked(draws.gate(p_rot), (draws.uniform() * 2 - 1) * math.pi * ROTATE_MAX, 0.0)
            g_inv = g_inv @ geom.rotate(-theta)
        if self._on("aniso"):
            an = _masked(draws.gate(p * s["aniso"]), _exp2(draws.normal() * ANISO_STD), 1.0)
            g_inv = g_inv @ geom.scale(1.0 / an, an)
        if self._on("rotate"):
            theta = _masked(draws.gate(p_rot), (draws.uniform() * 2 - 1) * math.pi * ROTATE_MAX, 0.0)
            g_inv = g_inv @ geom.rotate(-theta)
        if self._on("xfrac"):
            t = _masked(draws.gate(p * s["xfrac"], 1), draws.normal(2) * XFRAC_STD, 0.0)
            g_inv = g_inv @ geom.translate(-t[:, 0] * w, -t[:, 1] * h)
        return g_inv

    def color(self, draws: _Draws, p: tf.Tensor) -> tf.Tensor:
        """The composed colour matrix `[B, 4, 4]` of the colour transforms (each applied after the previous)."""
        s = self.strength
        m = tf.eye(4, batch_shape=[draws.batch])
        if self._on("brightness"):
            m = color.brightness(_masked(draws.gate(p * s["brightness"]), draws.normal() * BRIGHTNESS_STD, 0.0)) @ m
        if self._on("contrast"):
            m = color.contrast(_masked(draws.gate(p * s["contrast"]), _exp2(draws.normal() * CONTRAST_STD),
                                       1.0)) @ m
        if self._on("lumaflip"):
            m = color.lumaflip(_masked(draws.gate(p * s["lumaflip"]), tf.floor(draws.uniform() * 2), 0.0)) @ m
        if self._on("hue"):
            theta = (draws.uniform() * 2 - 1) * math.pi * HUE_MAX
            m = color.hue_rotation(_masked(draws.gate(p * s["hue"]), theta, 0.0)) @ m
        if self._on("saturation"):
            m = color.saturation(_masked(draws.gate(p * s["saturation"]), _exp2(draws.normal() * SATURATION_STD),
                                         1.0)) @ m
        return m
