"""The mixed-precision settings and their allowed values, importable without TensorFlow (the command line and the
options check them before TensorFlow starts)."""

from dnnlib.options import Range

PRECISIONS = ("fp32", "fp16", "bf16")
DEFAULT_NUM_FP16_RES = 4
DEFAULT_CONV_CLAMP = 256.0
MIN_REDUCED_RES_LOG2 = 3  # 8x8: the 4x4 layers always compute in float32 (as StyleGAN2-ADA)
NUM_FP16_RES_RANGE = Range(0, 16)
# fp16's largest finite value is 65504: a clamp above it would clamp nothing.
CONV_CLAMP_RANGE = Range(0.0, 65504.0, lo_open=True)
