"""FIR up/down-sampling and resampling convolutions, with StyleGAN2 `upfirdn_2d` semantics, in pure TF (NHWC).

`upfirdn_2d` = upsample by zero insertion -> pad (negative pads crop) -> 2-D FIR convolution (true convolution, the
kernel is flipped) -> downsample by keeping every `down`-th sample. Separable kernels on inputs of static size run in
polyphase form (no zero-inserted samples are multiplied, no dropped samples computed) as one depthwise convolution
whose output channels are the phases: a handful of graph ops per call (a slice and multiply per tap before), twice
differentiable with and without XLA. The literal form, a weighted sum of shifted slices, stays as the reference
and both are tested equal. 1x1 resampling convs mix channels at the low resolution (the mixing commutes with the
per-channel FIR).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf

DEFAULT_KERNEL = (1, 3, 3, 1)


def setup_kernel(k: Sequence[float] | np.ndarray | None) -> np.ndarray:
    """Returns a normalized 2-D FIR kernel `[kh, kw]` (1-D input -> outer product); sum is 1."""
    k = np.asarray(DEFAULT_KERNEL if k is None else k, dtype=np.float64)
    if k.ndim == 1:
        k = np.outer(k, k)
    if k.ndim != 2:
        raise ValueError(f"FIR kernel must be 1-D or 2-D, got shape {k.shape}")
    return k / np.sum(k)


def _separate(k: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Returns (ky, kx) with k == outer(ky, kx) when the kernel is separable, else None."""
    u, s, vt = np.linalg.svd(k)
    if s.size > 1 and s[1] > 1e-9 * s[0]:
        return None
    return u[:, 0] * s[0], vt[0]


def _fir_axis(x: tf.Tensor, taps: np.ndarray, axis: int) -> tf.Tensor:
    """Valid 1-D convolution (kernel flipped) of `x` along `axis` with numeric `taps`.

    Uses strided-slice indexing, not `tf.slice`: inside an XLA context the gradient of `tf.slice` is an
    `XlaDynamicUpdateSlice`, which has no gradient, so second derivatives (R1) would fail under `jit_compile=True`.
    """
    n = len(taps)
    size = tf.shape(x)[axis] - (n - 1)
    out = None
    for i, t in enumerate(taps[::-1]):
        if t == 0:
            continue
        index = [slice(None)] * 4
        index[axis] = slice(i, i + size)
        term = x[tuple(index)] * tf.constant(t, x.dtype)
        out = term if out is None else out + term
    return out


def _fir_2d(x: tf.Tensor, k: np.ndarray) -> tf.Tensor:
    """Valid 2-D convolution (kernel flipped) of NHWC `x` with the numeric kernel `k`, per channel."""
    sep = _separate(k)
    if sep is not None:
        return _fir_axis(_fir_axis(x, sep[0], 1), sep[1], 2)
    kh, kw = k.shape
    h = tf.shape(x)[1] - (kh - 1)
    w = tf.shape(x)[2] - (kw - 1)
    kf = k[::-1, ::-1]
    out = None
    for i in range(kh):
        for j in range(kw):
            if kf[i, j] == 0:
                continue
            term = x[:, i:i + h, j:j + w, :] * tf.constant(kf[i, j], x.dtype)
            out = term if out is None else out + term
    return out


def _pad_crop(x: tf.Tensor, pad0: int, pad1: int) -> tf.Tensor:
    """Pads H and W by (pad0, pad1) zeros; negative values crop instead."""
    p0, p1 = max(pad0, 0), max(pad1, 0)
    if p0 or p1:
        x = tf.pad(x, [[0, 0], [p0, p1], [p0, p1], [0, 0]])
    c0, c1 = max(-pad0, 0), max(-pad1, 0)
    if c0 or c1:
        h, w = tf.shape(x)[1], tf.shape(x)[2]
        x = x[:, c0:h - c1, c0:w - c1, :]
    return x


def _zero_stuff(x: tf.Tensor, up: int) -> tf.Tensor:
    """Inserts `up - 1` zeros after every sample along H and W: `[N, H, W, C] -> [N, H*up, W*up, C]`."""
    shape = tf.shape(x)
    n, h, w, c = shape[0], shape[1], shape[2], x.shape[3]
    x = tf.reshape(x, [n, h, 1, w, 1, c])
    x = tf.pad(x, [[0, 0], [0, 0], [0, up - 1], [0, 0], [0, up - 1], [0, 0]])
    return tf.reshape(x, [n, h * up, w * up, c])


def _axis_phases(kf: np.ndarray, up: int, down: int, pad0: int, pad1: int, length: int
                 ) -> tuple[np.ndarray, int, int, int]:
    """The polyphase decomposition of one separable pass of `upfirdn_2d` along an axis of static `length`.

    With `kf` the flipped taps, output m is `Σ_i kf[i] · u[down·m + i − pad0]`, `u` the zero-stuffed input. For
    `up > 1` (then `down == 1`) output m = up·j + p only sees taps i with `(p + i − pad0) % up == 0`, i.e. input
    `j + (p + i − pad0) / up`, so each phase p is a short FIR on the input and the phases are interleaved. For
    `up == 1` the taps read every `down`-th input, so only the kept outputs are computed.

    Returns:
        `(filters [up, L], first, num, count)`: phase p's output j is `Σ_l filters[p, l] · x[stride·j + first + l]`
        (`stride` = `down`; input indices outside `[0, length)` read zeros) for `j < num`; interleaving the phases
        gives `num · up >= count` samples, of which the first `count` are the output.
    """
    n = len(kf)
    count = (length * up + pad0 + pad1 - n) // down + 1
    taps = [[((p + i - pad0) // up, t) for i, t in enumerate(kf) if (p + i - pad0) % up == 0 and t != 0]
            for p in range(up)]
    offsets = [o for phase in taps for o, _ in phase] or [0]
    first = min(offsets)
    filters = np.zeros([up, max(offsets) - first + 1])
    for p, phase in enumerate(taps):
        for o, t in phase:
            filters[p, o - first] += t
    return filters, first, -(-count // up), count


def _pad_or_crop(x: tf.Tensor, before: tuple[int, int], after: tuple[int, int]) -> tf.Tensor:
    """Pads H and W of `x` with zeros (`before`/`after` > 0) or crops them (< 0); crops by strided slicing
    (XLA-safe, see `_fir_axis`). `before`, `after`: (H, W) amounts."""
    if max(before + after) > 0:
        x = tf.pad(x, [[0, 0], [max(before[0], 0), max(after[0], 0)], [max(before[1], 0), max(after[1], 0)], [0, 0]])
    if min(before + after) < 0:
        h, w = int(x.shape[1]), int(x.shape[2])
        x = x[:, max(-before[0], 0):h - max(-after[0], 0), max(-before[1], 0):w - max(-after[1], 0), :]
    return x


def _polyphase_2d(x: tf.Tensor, ky: np.ndarray, kx: np.ndarray, up: int, down: int, pad0: int, pad1: int
                  ) -> tf.Tensor:
    """`upfirdn_2d` with the separable kernel `outer(ky, kx)` as one depthwise convolution (static H, W, C).

    Every (row phase, column phase) pair is one output channel of a depthwise conv with channel multiplier `up²`
    over the input (strided by `down`), so no zero-inserted sample is multiplied and no dropped sample computed;
    the phases are then interleaved into the `up`-times larger image. A single `DepthwiseConv2dNative` (and its
    two gradient ops) replaces one slice and multiply per tap, and it is twice differentiable with and without XLA.

    Args:
        x: Images `[N, H, W, C]` (H, W, C static).
        ky: Flipped 1-D taps along H.
        kx: Flipped 1-D taps along W.
        up: Upsampling factor (`down` must then be 1).
        down: Downsampling factor (`up` must then be 1).
        pad0: Padding before (negative crops).
        pad1: Padding after (negative crops).

    Returns:
        `[N, count_h, count_w, C]`, as `upfirdn_2d`.
    """
    c = int(x.shape[3])
    fy, y0, ny, count_y = _axis_phases(ky, up, down, pad0, pad1, int(x.shape[1]))
    fx, x0, nx, count_x = _axis_phases(kx, up, down, pad0, pad1, int(x.shape[2]))
    x = _pad_or_crop(x, (-y0, -x0), (down * (ny - 1) + y0 + fy.shape[1] - int(x.shape[1]),
                                     down * (nx - 1) + x0 + fx.shape[1] - int(x.shape[2])))
    kernel = np.einsum("pi,qj->ijpq", fy, fx).reshape(fy.shape[1], fx.shape[1], 1, up * up)
    kernel = tf.constant(np.broadcast_to(kernel, kernel.shape[:2] + (c, up * up)), x.dtype)
    # The raw op: tf.nn.depthwise_conv2d adds dilation handling (more graph ops) that a VALID conv does not need.
    y = tf.raw_ops.DepthwiseConv2dNative(input=x, filter=kernel, strides=[1, down, down, 1], padding="VALID")
    if up == 1:  # y: [N, ny, nx, C * up²], channel c * up² + phase_y * up + phase_x
        return y
    y = tf.reshape(y, [-1, ny, nx, c, up, up])
    y = tf.reshape(tf.transpose(y, [0, 1, 4, 2, 5, 3]), [-1, ny * up, nx * up, c])
    if (ny * up, nx * up) != (count_y, count_x):
        y = y[:, :count_y, :count_x, :]
    return y


def upfirdn_2d(x: tf.Tensor, k: np.ndarray, up: int = 1, down: int = 1, pad0: int = 0, pad1: int = 0,
               polyphase: bool = True) -> tf.Tensor:
    """Upsample, FIR-filter and downsample a batch of NHWC images.

    Args:
        x: Images `[N, H, W, C]`.
        k: Numeric 2-D FIR kernel `[kh, kw]` (already scaled as wanted; not normalized here).
        up: Integer upsampling factor (zero insertion).
        down: Integer downsampling factor (keep every `down`-th sample).
        pad0: Padding before, on both H and W (negative crops).
        pad1: Padding after, on both H and W (negative crops).
        polyphase: For separable kernels on inputs of static size, resample without the zero-inserted or
            not-kept samples, as one depthwise convolution (`_polyphase_2d`); False (or a case it does not cover: non-separable kernel, dynamic
            size, both `up` and `down`) runs the reference form literally. Both are tested equal.

    Returns:
        `[N, (H*up + pad0 + pad1 - kh + 1) // down (rounded up), ..., C]`.
    """
    k = np.asarray(k, dtype=np.float64)
    sep = _separate(k) if polyphase and (up == 1 or down == 1) else None
    if sep is not None and x.shape[1] is not None and x.shape[2] is not None and x.shape[3] is not None:
        return _polyphase_2d(x, sep[0][::-1], sep[1][::-1], up, down, pad0, pad1)
    if up > 1:
        x = _zero_stuff(x, up)
    x = _pad_crop(x, pad0, pad1)
    x = _fir_2d(x, k)
    if down > 1:
        x = x[:, ::down, ::down, :]
    return x


def upsample_2d(x: tf.Tensor, k: Sequence[float] | None = None, factor: int = 2, gain: float = 1.0) -> tf.Tensor:
    """Upsamples `[N, H, W, C]` to `[N, H*factor, W*factor, C]` with a FIR filter (`k=None`: nearest neighbour)."""
    if k is None:
        kk = np.ones([factor, factor]) * gain
    else:
        kk = setup_kernel(k) * (gain * factor ** 2)
    p = kk.shape[0] - factor
    return upfirdn_2d(x, kk, up=factor, pad0=(p + 1) // 2 + factor - 1, pad1=p // 2)


def downsample_2d(x: tf.Tensor, k: Sequence[float] | None = None, factor: int = 2, gain: float = 1.0) -> tf.Tensor:
    """Downsamples `[N, H, W, C]` to `[N, H/factor, W/factor, C]` with a FIR filter (`k=None`: box filter)."""
    kk = (np.ones([factor, factor]) / factor ** 2 if k is None else setup_kernel(k)) * gain
    p = kk.shape[0] - factor
    return upfirdn_2d(x, kk, down=factor, pad0=(p + 1) // 2, pad1=p // 2)


def upsample_conv_2d(x: tf.Tensor, w: tf.Tensor, k: Sequence[float] | None = None, factor: int = 2,
                     gain: float = 1.0) -> tf.Tensor:
    """Transposed convolution with stride `factor` followed by a FIR blur (StyleGAN2 `upsample_conv_2d`).

    Args:
        x: Input `[N, H, W, C_in]`.
        w: Weight `[kh, kw, C_in, C_out]` (HWIO, already scaled); used through the transposed conv with its spatial
            axes flipped, exactly as the original.
        k: 1-D/2-D FIR kernel (`None`: [1, 3, 3, 1]).
        factor: Upsampling factor.
        gain: Signal gain.

    Returns:
        `[N, H*factor, W*factor, C_out]`.
    """
    kk = setup_kernel(k) * (gain * factor ** 2)
    conv_h, conv_w = int(w.shape[0]), int(w.shape[1])
    c_out = int(w.shape[3])
    p = (kk.shape[0] - factor) - (conv_w - 1)
    if conv_h == conv_w == 1:  # channel mixing commutes with the per-channel FIR: mix at the low resolution
        x = tf.nn.conv2d(x, w, strides=1, padding="VALID")
        return upfirdn_2d(x, kk, up=factor, pad0=(p + 1) // 2 + factor - 1, pad1=p // 2 + 2 - factor)
    wt = tf.transpose(w[::-1, ::-1], [0, 1, 3, 2])  # [kh, kw, C_out, C_in] as conv2d_transpose expects
    shape = tf.shape(x)
    out_shape = tf.stack([shape[0], (shape[1] - 1) * factor + conv_h, (shape[2] - 1) * factor + conv_w, c_out])
    x = tf.nn.conv2d_transpose(x, wt, out_shape, strides=factor, padding="VALID")
    return upfirdn_2d(x, kk, pad0=(p + 1) // 2 + factor - 1, pad1=p // 2 + 1)


def conv_downsample_2d(x: tf.Tensor, w: tf.Tensor, k: Sequence[float] | None = None, factor: int = 2,
                       gain: float = 1.0) -> tf.Tensor:
    """FIR blur followed by a strided valid convolution (StyleGAN2 `conv_downsample_2d`).

    Args:
        x: Input `[N, H, W, C_in]`.
        w: Weight `[kh, kw, C_in, C_out]` (HWIO, already scaled).
        k: 1-D/2-D FIR kernel (`None`: [1, 3, 3, 1]).
        factor: Downsampling factor.
        gain: Signal gain.

    Returns:
        `[N, H/factor, W/factor, C_out]`.
    """
    kk = setup_kernel(k) * gain
    conv_w = int(w.shape[1])
    p = (kk.shape[0] - factor) + (conv_w - 1)
    if int(w.shape[0]) == conv_w == 1:  # keep only the samples the stride-`factor` 1x1 conv reads, then mix
        x = upfirdn_2d(x, kk, down=factor, pad0=(p + 1) // 2, pad1=p // 2)
        return tf.nn.conv2d(x, w, strides=1, padding="VALID")
    x = upfirdn_2d(x, kk, pad0=(p + 1) // 2, pad1=p // 2)
    return tf.nn.conv2d(x, w, strides=factor, padding="VALID")


def conv_2d(x: tf.Tensor, w: tf.Tensor, up: bool = False, down: bool = False,
            k: Sequence[float] | None = None) -> tf.Tensor:
    """3x3/1x1 same-size convolution, or its up/down-sampling variant. `x`: `[N, H, W, C_in]`, `w`: HWIO."""
    if up and down:
        raise ValueError("conv_2d: up and down are exclusive")
    if up:
        return upsample_conv_2d(x, w, k)
    if down:
        return conv_downsample_2d(x, w, k)
    return tf.nn.conv2d(x, w, strides=1, padding="SAME")
