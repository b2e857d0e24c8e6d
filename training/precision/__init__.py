"""Mixed precision: which layers compute in which dtype, and dynamic loss scaling for float16.

Modules:
    settings    the settings' names, defaults and ranges (no TensorFlow).
    policy      `--precision fp32|fp16|bf16`, `--num-fp16-res`, `--conv-clamp`: per-layer dtypes.
    loss_scale  dynamic loss scaling for `--precision fp16` (skipped steps, scale kept in checkpoints).
"""
