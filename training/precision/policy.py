"""Mixed precision (`--precision fp32|fp16|bf16`, `--num-fp16-res`, `--conv-clamp`): which layers compute in which
dtype.

As StyleGAN2-ADA: the blocks of the top `num_fp16_res` resolutions of G and D (never below 8x8) compute in the
reduced dtype, and the activations of those layers are clamped to ±`conv_clamp`. Everything else stays float32:
the variables (cast to the compute dtype inside each layer), the optimizer state, the mapping network, the 4x4
layers, D's epilogue, the losses, the running RGB image of the skip generator and every network output. With
`fp32` (the default) no layer changes at all, so outputs are bit-identical to a build without this module.

Ops. TensorFlow 2.21's CPU kernels run every op the reduced layers need in float16 and bfloat16, eagerly and under
XLA, with first and second derivatives (checked for Conv2D, strided Conv2D, Conv2DTranspose, DepthwiseConv2dNative,
MatMul, BatchMatMul, softmax, rsqrt, clip, lrelu, tanh), so no op of a reduced layer falls back to float32 for want
of a kernel. Three parts are computed in float32 on purpose, for range, not kernels:
- the styles and the demodulation coefficients of modulated convolutions (small `[B, C]` tensors; the weight and
  styles are first divided by their largest magnitude, which the demodulation cancels, as StyleGAN2-ADA);
- the attention layers inside reduced blocks (softmax over all positions, layer norm and k-means run on float32
  copies of the features; the result is cast back);
- the k-GAN merge (its inputs are cast to float32).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, NamedTuple, Optional

import tensorflow as tf

from dnnlib.util import UserError
from training.precision.settings import (CONV_CLAMP_RANGE, DEFAULT_CONV_CLAMP, DEFAULT_NUM_FP16_RES,  # noqa: F401
                                         MIN_REDUCED_RES_LOG2, NUM_FP16_RES_RANGE, PRECISIONS)

COMPUTE_DTYPES = {"fp32": tf.float32, "fp16": tf.float16, "bf16": tf.bfloat16}


class LayerPrecision(NamedTuple):
    """How one block computes: its dtype and the clamp of its activations (None: no clamp)."""

    dtype: tf.DType = tf.float32
    clamp: Optional[float] = None


FP32 = LayerPrecision()


@dataclass(frozen=True)
class Precision:
    """The mixed-precision policy of a network pair.

    Attributes:
        mode: `fp32`, `fp16` or `bf16`.
        num_fp16_res: Number of top resolutions (log2 steps) computing in the reduced dtype; 0: none.
        conv_clamp: Clamp of the reduced layers' activations (None: no clamp). Unused in fp32.
    """

    mode: str = "fp32"
    num_fp16_res: int = DEFAULT_NUM_FP16_RES
    conv_clamp: Optional[float] = DEFAULT_CONV_CLAMP

    def validate(self) -> "Precision":
        """Raises a one-line `UserError` naming the flag of a bad value; returns self."""
        check_precision(self.mode, self.num_fp16_res, self.conv_clamp)
        return self

    @property
    def compute_dtype(self) -> tf.DType:
        """The reduced dtype (float32 for fp32)."""
        return COMPUTE_DTYPES[self.mode]

    @property
    def loss_scaling(self) -> bool:
        """Whether training uses dynamic loss scaling (fp16 only: bf16 has float32's exponent range)."""
        return self.mode == "fp16" and self.num_fp16_res > 0

    def first_reduced_res_log2(self, res_log2: int) -> int:
        """log2 of the lowest resolution that computes in the reduced dtype (`res_log2 + 1` when none does)."""
        if self.mode == "fp32" or self.num_fp16_res <= 0:
            return res_log2 + 1
        return max(res_log2 + 1 - self.num_fp16_res, MIN_REDUCED_RES_LOG2)

    def at(self, r: int, res_log2: int) -> LayerPrecision:
        """The precision of the block at log2-resolution `r` of a network of log2-resolution `res_log2`."""
        if r < self.first_reduced_res_log2(res_log2):
            return FP32
        return LayerPrecision(self.compute_dtype, self.conv_clamp)

    def describe(self, res_log2: int) -> str:
        """E.g. `fp16 at 8x8..32x32, activations clamped to ±256` or `fp32`."""
        first = self.first_reduced_res_log2(res_log2)
        if first > res_log2:
            return "fp32"
        clamp = "no clamp" if self.conv_clamp is None else f"activations clamped to ±{self.conv_clamp:g}"
        return f"{self.mode} at {2 ** first}x{2 ** first}..{2 ** res_log2}x{2 ** res_log2}, {clamp}"

    @classmethod
    def from_options(cls, opts: Any) -> "Precision":
        """The policy of training options (fields `precision`, `num_fp16_res`, `conv_clamp`; defaults if absent)."""
        return cls(getattr(opts, "precision", "fp32"), getattr(opts, "num_fp16_res", DEFAULT_NUM_FP16_RES),
                   getattr(opts, "conv_clamp", DEFAULT_CONV_CLAMP))

    def replace(self, **changes: Any) -> "Precision":
        """A copy with `changes`."""
        return dataclasses.replace(self, **changes)


def check_precision(mode: Any, num_fp16_res: Any, conv_clamp: Any) -> None:
    """Validates the three settings.

    Raises:
        UserError: One line naming `--precision`, `--num-fp16-res` or `--conv-clamp`, the value and what it must be.
    """
    if mode not in PRECISIONS:
        raise UserError(f"--precision {str(mode)[:40]}: choose one of {', '.join(PRECISIONS)}")
    NUM_FP16_RES_RANGE.check("--num-fp16-res", num_fp16_res, integer=True)
    if conv_clamp is not None:
        CONV_CLAMP_RANGE.check("--conv-clamp", conv_clamp, integer=False)


def set_precision(net: Any, precision: Precision) -> None:
    """Sets the compute dtype and clamp of every block of a `Generator` or `Discriminator` (in place).

    Call it before the network is traced into a `tf.function` (a traced function keeps the precision it saw).

    Args:
        net: A `training.networks.generator.Generator` or `training.networks.discriminator.Discriminator`.
        precision: The policy.
    """
    precision.validate()
    target = getattr(net, "synthesis", net)
    res_log2 = target.cfg.res_log2
    for r in target.blocks:
        target.set_block_precision(r, precision.at(r, res_log2))


def block_dtypes(net: Any) -> dict[int, tf.DType]:
    """log2-resolution -> compute dtype of each block of a `Generator` or `Discriminator` (for tests and logs)."""
    target = getattr(net, "synthesis", net)
    return {r: block.precision.dtype for r, block in target.blocks.items()}


def to_float32(x: Optional[tf.Tensor]) -> Optional[tf.Tensor]:
    """`x` as float32 (the identity for float32 tensors and None)."""
    return None if x is None else tf.cast(x, tf.float32)
