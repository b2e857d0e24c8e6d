"""The inception-2015-12-05 network (the FID/IS Inception-v3) as a plain TF2 `tf.Module`, NHWC.

Architecture facts (from the TF graph and NVIDIA's TorchScript translation of it): every conv has no bias and is
followed by batch norm (beta, moving mean/var, eps 1e-3; gamma only where the graph scales) and ReLU; blocks
`mixed ... mixed_10` with towers; 3x3 stride-1 average pools exclude padding (TF SAME); the pool branch of
`mixed_10` is a max pool; a final 8x8 average pool gives the 2048-d `pool_3` features; an optional 2048 -> 1008
linear layer gives the logits used by the Inception Score.

Parameter names are canonical dotted names relative to the network root, e.g. `mixed_4.tower_1.conv_2` or
`mixed_9.tower_1_mixed_conv`; each conv has `<name>.weight` (HWIO) and `<name>.beta/.mean/.var` (+ `.gamma`).
"""

from __future__ import annotations

from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from dnnlib.util import UserError

INPUT_SIZE = 299
FEATURE_DIM = 2048
NUM_CLASSES = 1008
BN_EPSILON = 1e-3

# Convs that are not "stride 1, SAME": name -> stride (all of these use VALID padding).
VALID_CONVS: Dict[str, int] = {
    "conv": 2, "conv_1": 1, "conv_4": 1, "mixed_3.conv": 2, "mixed_3.tower.conv_2": 2,
    "mixed_8.tower.conv_1": 2, "mixed_8.tower_1.conv_3": 2,
}
_STEM = ["conv", "conv_1", "conv_2", "#maxpool_s2", "conv_3", "conv_4", "#maxpool_s2"]
_BLOCK_A = [["conv"], ["tower.conv", "tower.conv_1"], ["tower_1.conv", "tower_1.conv_1", "tower_1.conv_2"],
            ["#avgpool", "tower_2.conv"]]
_BLOCK_B = [["conv"], ["tower.conv", "tower.conv_1", "tower.conv_2"], ["#maxpool_s2"]]
_BLOCK_C = [["conv"], ["tower.conv", "tower.conv_1", "tower.conv_2"],
            ["tower_1.conv", "tower_1.conv_1", "tower_1.conv_2", "tower_1.conv_3", "tower_1.conv_4"],
            ["#avgpool", "tower_2.conv"]]
_BLOCK_D = [["tower.conv", "tower.conv_1"], ["tower_1.conv", "tower_1.conv_1", "tower_1.conv_2", "tower_1.conv_3"],
            ["#maxpool_s2"]]
_BLOCKS: List[Tuple[str, object]] = (
    [(f"mixed{s}", _BLOCK_A) for s in ("", "_1", "_2")] + [("mixed_3", _BLOCK_B)]
    + [(f"mixed_{i}", _BLOCK_C) for i in (4, 5, 6, 7)] + [("mixed_8", _BLOCK_D)]
    + [("mixed_9", "E_avg"), ("mixed_10", "E_max")])
_E_CONVS = ["conv", "tower_conv", "tower_mixed_conv", "tower_mixed_conv_1", "tower_1_conv", "tower_1_conv_1",
            "tower_1_mixed_conv", "tower_1_mixed_conv_1", "tower_2_conv"]


def conv_names() -> List[str]:
    """Returns the canonical names of all 94 conv layers, in network order."""
    names = [n for n in _STEM if not n.startswith("#")]
    for block, spec in _BLOCKS:
        if isinstance(spec, str):
            names += [f"{block}.{c}" for c in _E_CONVS]
        else:
            names += [f"{block}.{s}" for branch in spec for s in branch if not s.startswith("#")]
    return names


def legacy_resize(images: tf.Tensor, size: int = INPUT_SIZE) -> tf.Tensor:
    """TF1 legacy bilinear resize (align_corners=False, half_pixel_centers=False, no antialias).

    Args:
        images: float32 `[B, H, W, C]`.
        size: Output height and width.

    Returns:
        float32 `[B, size, size, C]`; output pixel j samples input coordinate j * in / size.
    """
    return tf.raw_ops.ResizeBilinear(images=images, size=tf.constant([size, size], tf.int32),
                                     align_corners=False, half_pixel_centers=False)


class _ConvBN(tf.Module):
    """Conv (no bias) + inference batch norm folded into the weights + ReLU."""

    def __init__(self, name: str, params: Mapping[str, np.ndarray]):
        super().__init__(name=name.replace(".", "__"))
        weight = np.asarray(params[f"{name}.weight"], np.float64)
        if weight.ndim != 4:
            raise UserError(f"inception weights: {name}.weight has shape {weight.shape}; expected 4-D HWIO")
        eps = float(params.get(f"{name}.eps", BN_EPSILON))
        scale = 1.0 / np.sqrt(np.asarray(params[f"{name}.var"], np.float64) + eps)
        if f"{name}.gamma" in params:
            scale = scale * np.asarray(params[f"{name}.gamma"], np.float64)
        shift = np.asarray(params[f"{name}.beta"], np.float64) - np.asarray(params[f"{name}.mean"], np.float64) * scale
        if scale.shape != (weight.shape[3],) or shift.shape != scale.shape:
            raise UserError(f"inception weights: batch-norm of {name} does not match its {weight.shape[3]} channels")
        self.weight = tf.Variable((weight * scale).astype(np.float32), trainable=False, name="weight")
        self.bias = tf.Variable(shift.astype(np.float32), trainable=False, name="bias")
        self.stride = VALID_CONVS.get(name, 1)
        self.padding = "VALID" if name in VALID_CONVS else "SAME"

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        y = tf.nn.conv2d(x, self.weight, strides=self.stride, padding=self.padding)
        return tf.nn.relu(y + self.bias)


def _pool(x: tf.Tensor, kind: str) -> tf.Tensor:
    if kind == "#maxpool_s2":
        return tf.nn.max_pool2d(x, 3, 2, "VALID")
    if kind == "#maxpool":
        return tf.nn.max_pool2d(x, 3, 1, "SAME")
    return tf.nn.avg_pool2d(x, 3, 1, "SAME")  # TF SAME average pooling excludes the padding.


class InceptionV3(tf.Module):
    """inception-2015-12-05 up to `pool_3` (and the 1008-way logits when their weights are given).

    Attributes:
        has_logits: Whether the 2048 -> 1008 output layer is present (needed for the Inception Score).
    """

    def __init__(self, params: Mapping[str, np.ndarray], logits_weight: Optional[np.ndarray] = None,
                 logits_bias: Optional[np.ndarray] = None, name: str = "inception_2015_12_05"):
        """Builds the network.

        Args:
            params: Canonical conv/batch-norm parameters (see module docstring); weights HWIO.
            logits_weight: Optional `[2048, 1008]` output-layer matrix.
            logits_bias: Optional `[1008]` output-layer bias (kept for completeness; IS does not use it).
            name: Module name.
        """
        super().__init__(name=name)
        missing = [n for n in conv_names() if f"{n}.weight" not in params]
        if missing:
            raise UserError(f"inception weights: {len(missing)} conv layers missing (first: {missing[0]}); "
                            "pass inception-2015-12-05 weights (.pt, .pb or .tgz)")
        self.convs = {n: _ConvBN(n, params) for n in conv_names()}
        self.has_logits = logits_weight is not None
        if self.has_logits:
            w = np.asarray(logits_weight, np.float32)
            if w.shape != (FEATURE_DIM, NUM_CLASSES):
                raise UserError(f"inception weights: output layer has shape {w.shape}; expected (2048, 1008)")
            self.logits_weight = tf.Variable(w, trainable=False, name="logits_weight")
            b = np.zeros([NUM_CLASSES], np.float32) if logits_bias is None else np.asarray(logits_bias, np.float32)
            self.logits_bias = tf.Variable(b, trainable=False, name="logits_bias")

    def _run_branch(self, x: tf.Tensor, block: str, steps: Sequence[str]) -> tf.Tensor:
        for step in steps:
            x = _pool(x, step) if step.startswith("#") else self.convs[f"{block}.{step}"](x)
        return x

    def _block_e(self, x: tf.Tensor, block: str, pool: str) -> tf.Tensor:
        def c(name: str, t: tf.Tensor) -> tf.Tensor:
            return self.convs[f"{block}.{name}"](t)

        a = c("tower_conv", x)
        b = c("tower_1_conv_1", c("tower_1_conv", x))
        pooled = _pool(x, "#avgpool" if pool == "E_avg" else "#maxpool")
        outs = [c("conv", x), c("tower_mixed_conv", a), c("tower_mixed_conv_1", a), c("tower_1_mixed_conv", b),
                c("tower_1_mixed_conv_1", b), c("tower_2_conv", pooled)]
        return tf.concat(outs, axis=-1)

    def preprocess(self, images: tf.Tensor, resize: str = "legacy") -> tf.Tensor:
        """uint8/float `[B, H, W, 3]` in [0, 255] -> normalized float32 `[B, 299, 299, 3]`.

        Args:
            images: `[B, H, W, 3]` pixel values in [0, 255] (uint8 or float; not rounded further).
            resize: "legacy" (TF1 ResizeBilinear, the standard) or "half_pixel" (TF2-style, for comparisons only).
        """
        x = tf.cast(images, tf.float32)
        if resize == "legacy":
            x = legacy_resize(x)
        elif resize == "half_pixel":
            x = tf.raw_ops.ResizeBilinear(images=x, size=tf.constant([INPUT_SIZE, INPUT_SIZE]),
                                          align_corners=False, half_pixel_centers=True)
        else:
            raise ValueError(f"resize must be 'legacy' or 'half_pixel', got {resize!r}")
        return (x - 128.0) / 128.0

    def stages(self, x: tf.Tensor, last: str = "mixed_10") -> Iterator[Tuple[str, tf.Tensor]]:
        """Runs the network on normalized `[B, H, W, 3]` and yields `(name, activation [B, h, w, C])` after every
        stem conv (`conv` ... `conv_4`) and every block (`mixed` ... `mixed_10`), stopping after `last`."""
        for step in _STEM:
            x = _pool(x, step) if step.startswith("#") else self.convs[step](x)
            if not step.startswith("#"):
                yield step, x
                if step == last:
                    return
        for block, spec in _BLOCKS:
            if isinstance(spec, str):
                x = self._block_e(x, block, spec)
            else:
                x = tf.concat([self._run_branch(x, block, branch) for branch in spec], axis=-1)
            yield block, x
            if block == last:
                return

    def pool3(self, x: tf.Tensor) -> tf.Tensor:
        """Normalized `[B, 299, 299, 3]` -> `pool_3` features float32 `[B, 2048]`."""
        for _, x in self.stages(x):
            pass
        return tf.reduce_mean(x, axis=[1, 2])

    def logits(self, features: tf.Tensor, use_bias: bool = False) -> tf.Tensor:
        """`pool_3` features `[B, 2048]` -> logits `[B, 1008]`.

        The Inception Score uses the logits without the bias, as the original IS code (matmul with
        `softmax/weights` only) and StyleGAN2-ADA (`no_output_bias=True`) do.
        """
        if not self.has_logits:
            raise UserError("inception: these weights have no output layer (pool_3 only); the Inception Score "
                            "needs the full network: pass --inception PATH to NVIDIA's inception-2015-12-05.pt or "
                            "the TTUR inception-2015-12-05.tgz")
        out = tf.matmul(features, self.logits_weight)
        return out + self.logits_bias if use_bias else out
