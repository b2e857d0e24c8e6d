"""FIR up/down-sampling and resampling convolutions, with StyleGAN2 `upfirdn_2d` semantics, in pure TF (NHWC).

`upfirdn_2d` = upsample by zero insertion -> pad (negative pads crop) -> 2-D FIR convolution (true convolution, the
kernel is flipped) -> downsample by keeping every `down`-th sample. The FIR is written as a weighted sum of shifted
slices (separable kernels as two 1-D passes), which needs no depthwise kernel, is twice differentiable and lets XLA
fuse it with its neighbours. Separable kernels run in polyphase form (no zero-inserted samples are multiplied, no
dropped samples computed); the literal form stays as the reference and both are tested equal. 1x1 resampling convs
mix channels at the low resolution (the mixing commutes with the per-channel FIR).
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


def _phase_axis(x: tf.Tensor, kf: np.ndarray, up: int, down: int, pad0: int, pad1: int, axis: int) -> tf.Tensor:
    """One separable pass of `upfirdn_2d` along `axis` (static length) without materializing the zero insertion.

    With `kf` the flipped taps, output m is `Σ_i kf[i] · u[down·m + i − pad0]`, `u` the zero-stuffed input. For
    `up > 1` (then `down == 1`) output m = up·j + p only sees taps i with `(p + i − pad0) % up == 0`, i.e. input
    `j + (p + i − pad0) / up`, so each phase p is a short FIR on the input and the phases are interleaved. For
    `up == 1` the taps read every `down`-th input, so only the kept outputs are computed.
    """
    n, length = len(kf), int(x.shape[axis])
    count = (length * up + pad0 + pad1 - n) // down + 1  # output length
    phases = []  # per phase: ([(offset, tap)], number of outputs)
    for p in range(up):
        taps = [((p + i - pad0) // up, t) for i, t in enumerate(kf) if (p + i - pad0) % up == 0 and t != 0]
        phases.append((taps, (count - p + up - 1) // up))
    span = (count - 1) * down if up == 1 else max(c for _, c in phases) - 1
    offsets = [o for taps, _ in phases for o, _ in taps] or [0]
    before, after = max(0, -min(offsets)), max(0, max(offsets) + span - (length - 1))
    if before or after:
        paddings = [[0, 0]] * 4
        paddings[axis] = [before, after]
        x = tf.pad(x, paddings)
    outs = []
    for taps, num in phases:
        out = None
        for o, t in taps:
            index = [slice(None)] * 4
            index[axis] = slice(o + before, o + before + (num - 1) * down + 1, down)
            term = x[tuple(index)] * tf.constant(t, x.dtype)
            out = term if out is None else out + term
        if out is None:  # a phase no tap reaches is all zeros
            index = [slice(None)] * 4
            index[axis] = slice(0, num)
            out = tf.zeros_like(x[tuple(index)])
        outs.append(out)
    if up == 1:
        return outs[0]
    num = phases[0][1]
    outs = [o if c == num else tf.pad(o, [[0, 0] if a != axis else [0, num - c] for a in range(4)])
            for o, (_, c) in zip(outs, phases)]
    y = tf.stack(outs, axis=axis + 1)
    shape = [-1 if a == 0 else (num * up if a == axis else y.shape[a + (a > axis)]) for a in range(4)]
    y = tf.reshape(y, shape)
    if num * up != count:
        index = [slice(None)] * 4
        index[axis] = slice(0, count)
        y = y[tuple(index)]
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
            not-kept samples (`_phase_axis`); False (or a case it does not cover: non-separable kernel, dynamic
            size, both `up` and `down`) runs the reference form literally. Both are tested equal.

    Returns:
        `[N, (H*up + pad0 + pad1 - kh + 1) // down (rounded up), ..., C]`.
    """
    k = np.asarray(k, dtype=np.float64)
    sep = _separate(k) if polyphase and (up == 1 or down == 1) else None
    if sep is not None and x.shape[1] is not None and x.shape[2] is not None and x.shape[3] is not None:
        x = _phase_axis(x, sep[0][::-1], up, down, pad0, pad1, 1)
        return _phase_axis(x, sep[1][::-1], up, down, pad0, pad1, 2)
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
