"""VGG16 as a plain TF2 `tf.Module` (NHWC), loaded from NVIDIA's TorchScript `vgg16.pt` tensors without torch.

Used for precision/recall (4096-d `fc7` features after ReLU, images area-resized to 224x224) and for PPL (LPIPS:
channel-normalized `relu1_2, relu2_2, relu3_3, relu4_3, relu5_3` activations weighted by the learned per-channel
LPIPS weights and averaged over space). Inputs are pixel values in [0, 255], normalized with the ImageNet
mean/std (the same affine map as LPIPS' scaling layer on [-1, 1] inputs).

The `.pt` tensors are matched by shape and order, not by name: 13 conv kernels `[O, I, 3, 3]` each followed by its
bias `[O]`, the fully-connected weights `[out, in]` (+ biases), and the five LPIPS weights `[1, C, 1, 1]`.
NVIDIA's file itself could not be inspected offline; its internal input scaling/resizing is assumed to follow the
LPIPS / torchvision conventions above.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf

from dnnlib.util import UserError
from metrics import netfiles, torchzip

CONV_CHANNELS = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)
POOL_AFTER = (1, 3, 6, 9, 12)  # conv indices followed by 2x2 max pooling (and the LPIPS taps)
FEATURE_DIM = 4096
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
LPIPS_EPS = 1e-10


def _take_bias(ordered: List[Tuple[str, np.ndarray]], start: int, size: int, used: set) -> Optional[np.ndarray]:
    for i in range(start + 1, len(ordered)):
        name, value = ordered[i]
        if i not in used and value.ndim == 1 and value.shape[0] == size:
            used.add(i)
            return value
        if value.ndim >= 2:
            return None  # biases directly follow their weights
    return None


def params_from_tensors(tensors: Dict[str, np.ndarray]) -> Dict[str, list]:
    """Groups `.pt` tensors into VGG16 parts by shape and order.

    Returns:
        {"convs": [(w HWIO, b)], "fcs": [(w [in, out], b)], "lins": [w [C]]}.

    Raises:
        UserError: The conv stack is not VGG16's.
    """
    ordered = list(tensors.items())
    used: set = set()
    convs, fcs, lins = [], [], []
    for i, (name, value) in enumerate(ordered):
        if value.ndim == 4 and value.shape[0] == 1 and value.shape[2:] == (1, 1):
            lins.append(value.reshape(-1).astype(np.float32))
        elif value.ndim == 4 and value.shape[2:] == (3, 3):
            bias = _take_bias(ordered, i, value.shape[0], used)
            bias = np.zeros([value.shape[0]], np.float32) if bias is None else bias
            convs.append((value.transpose(2, 3, 1, 0).astype(np.float32), bias.astype(np.float32)))
        elif value.ndim == 2:
            bias = _take_bias(ordered, i, value.shape[0], used)
            bias = np.zeros([value.shape[0]], np.float32) if bias is None else bias
            fcs.append((value.T.astype(np.float32), bias.astype(np.float32)))
    channels = tuple(w.shape[3] for w, _ in convs)
    if channels != CONV_CHANNELS or convs[0][0].shape[2] != 3:
        raise UserError(f"vgg16 weights: conv channels {channels} are not VGG16's {CONV_CHANNELS}; pass NVIDIA's "
                        "vgg16.pt")
    return {"convs": convs, "fcs": fcs, "lins": lins}


def area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """`[n_out, n_in]` averaging matrix of adaptive average pooling (PyTorch `interpolate(mode="area")`)."""
    m = np.zeros([n_out, n_in], np.float32)
    for i in range(n_out):
        lo, hi = (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)
        m[i, lo:hi] = 1.0 / (hi - lo)
    return m


def area_resize(images: tf.Tensor, height: int, width: int) -> tf.Tensor:
    """Adaptive-average-pool resize of float `[B, H, W, C]` to `[B, height, width, C]` (static H, W)."""
    mh = tf.constant(area_matrix(int(images.shape[1]), height))
    mw = tf.constant(area_matrix(int(images.shape[2]), width))
    return tf.einsum("oh,bhwc,pw->bopc", mh, images, mw)


class VGG16(tf.Module):
    """VGG16 convs (+ fc6/fc7 for features, + LPIPS weights for perceptual distance)."""

    def __init__(self, params: Dict[str, list], name: str = "vgg16"):
        super().__init__(name=name)
        self.conv_w = [tf.Variable(w, trainable=False, name=f"conv{i}_w") for i, (w, _) in enumerate(params["convs"])]
        self.conv_b = [tf.Variable(b, trainable=False, name=f"conv{i}_b") for i, (_, b) in enumerate(params["convs"])]
        fcs = params.get("fcs", [])
        dim = fcs[0][0].shape[1] if fcs else 0
        self.has_fc = len(fcs) >= 2 and fcs[0][0].shape == (7 * 7 * 512, dim) and fcs[1][0].shape == (dim, dim)
        if self.has_fc:
            # torch flattens [512, 7, 7] (CHW); reorder fc6 rows to our HWC flattening.
            fc6 = fcs[0][0].reshape(512, 7, 7, dim).transpose(1, 2, 0, 3).reshape(-1, dim)
            self.fc6_w, self.fc6_b = tf.Variable(fc6, trainable=False), tf.Variable(fcs[0][1], trainable=False)
            self.fc7_w, self.fc7_b = tf.Variable(fcs[1][0], trainable=False), tf.Variable(fcs[1][1], trainable=False)
        lins = params.get("lins", [])
        self.has_lpips = [len(w) for w in lins] == [CONV_CHANNELS[i] for i in POOL_AFTER]
        if self.has_lpips:
            self.lins = [tf.Variable(np.sqrt(np.maximum(w, 0.0)), trainable=False, name=f"lin{i}")
                         for i, w in enumerate(lins)]

    @staticmethod
    def normalize(images: tf.Tensor) -> tf.Tensor:
        """Pixel values [0, 255] -> ImageNet-normalized float32."""
        return (tf.cast(images, tf.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD

    def conv_stack(self, x: tf.Tensor, final_pool: bool = True) -> Tuple[tf.Tensor, List[tf.Tensor]]:
        """Normalized `[B, H, W, 3]` -> (pool5 output, the five LPIPS taps relu1_2 ... relu5_3).

        With `final_pool=False` the last max pool is skipped (LPIPS needs only the taps; small images allowed).
        """
        taps = []
        for i, (w, b) in enumerate(zip(self.conv_w, self.conv_b)):
            x = tf.nn.relu(tf.nn.conv2d(x, w, 1, "SAME") + b)
            if i in POOL_AFTER:
                taps.append(x)
                if final_pool or i != POOL_AFTER[-1]:
                    x = tf.nn.max_pool2d(x, 2, 2, "VALID")
        return x, taps

    def features(self, images: tf.Tensor) -> tf.Tensor:
        """`[B, H, W, 3]` in [0, 255] -> fc7 features after ReLU `[B, 4096]` (area-resized to 224x224).

        The fc6 input must be 7x7x512, so the resize to 224 is part of the feature definition.
        """
        if not self.has_fc:
            raise UserError("vgg16 weights: no fc6/fc7 layers; precision/recall needs NVIDIA's full vgg16.pt "
                            "(--vgg16 PATH)")
        x = area_resize(tf.cast(images, tf.float32), 224, 224)
        pooled, _ = self.conv_stack(self.normalize(x))
        flat = tf.reshape(pooled, [-1, 7 * 7 * 512])
        h = tf.nn.relu(tf.matmul(flat, self.fc6_w) + self.fc6_b)
        return tf.nn.relu(tf.matmul(h, self.fc7_w) + self.fc7_b)

    def lpips_features(self, images: tf.Tensor) -> tf.Tensor:
        """`[B, H, W, 3]` in [0, 255] -> `[B, F]` such that LPIPS(a, b) = sum((f(a) - f(b))^2)."""
        if not self.has_lpips:
            raise UserError("vgg16 weights: no LPIPS layer weights; PPL needs NVIDIA's vgg16.pt (--vgg16 PATH)")
        _, taps = self.conv_stack(self.normalize(images), final_pool=False)
        parts = []
        for tap, lin in zip(taps, self.lins):
            unit = tap / (tf.sqrt(tf.reduce_sum(tf.square(tap), axis=-1, keepdims=True)) + LPIPS_EPS)
            hw = tf.cast(tf.shape(tap)[1] * tf.shape(tap)[2], tf.float32)
            parts.append(tf.reshape(unit * lin / tf.sqrt(hw), [tf.shape(tap)[0], -1]))
        return tf.concat(parts, axis=1)

    def lpips(self, a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
        """LPIPS distance `[B]` between two image batches `[B, H, W, 3]` in [0, 255]."""
        return tf.reduce_sum(tf.square(self.lpips_features(a) - self.lpips_features(b)), axis=1)


def load_vgg16(path: Optional[str] = None, cache_dir: Optional[str] = None) -> Tuple[VGG16, str, str]:
    """Loads NVIDIA's vgg16.pt: explicit path/URL, else cache dir, else the real download URL.

    Returns:
        (module, file path, file sha256).
    """
    found = netfiles.resolve("VGG16 (NVIDIA vgg16.pt)", netfiles.VGG16_DOWNLOADS, path, cache_dir, flag="--vgg16")
    return VGG16(params_from_tensors(torchzip.load_tensors(found.path))), found.path, found.sha256
