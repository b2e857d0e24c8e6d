"""Pure-TensorFlow neural-network ops (NHWC), twice differentiable and fusable by XLA.

These replace the original's custom CUDA kernels (`fused_bias_act`, `upfirdn_2d`): XLA fuses the plain ops when a
caller compiles with `tf.function(jit_compile=True)`.
"""
