"""Independent NumPy oracles for the ops in `dnnlib.tflib.ops`, written from the StyleGAN2 definitions, and
finite-difference helpers shared by the op tests.

Nothing here calls the TF implementation. Layout is NHWC throughout; conv weights are HWIO `[kh, kw, C_in, C_out]`.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

# ----------------------------------------------------------------------------------------------------------------
# bias + activation


def np_bias_act(x: np.ndarray, b: np.ndarray | None, act: str, alpha: float = 0.2, gain: float | None = None,
                clamp: float | None = None) -> np.ndarray:
    """`clip(act(x + b) * gain, -clamp, clamp)`; `x` `[..., C]`, `b` `[C]`."""
    y = x if b is None else x + b
    if act == "linear":
        default_gain = 1.0
    elif act == "relu":
        y, default_gain = np.where(y > 0, y, 0.0), math.sqrt(2)
    elif act == "lrelu":
        y, default_gain = np.where(y > 0, y, alpha * y), math.sqrt(2)
    elif act == "tanh":
        y, default_gain = np.tanh(y), 1.0
    elif act == "sigmoid":
        y, default_gain = 1.0 / (1.0 + np.exp(-y)), 1.0
    else:
        raise ValueError(act)
    y = y * (default_gain if gain is None else gain)
    if clamp is not None:
        y = np.minimum(np.maximum(y, -clamp), clamp)
    return y


# ----------------------------------------------------------------------------------------------------------------
# FIR resampling


def normalized_kernel(k) -> np.ndarray:
    """1-D taps -> outer product; 2-D kept; divided by its sum."""
    k = np.asarray(k, dtype=np.float64)
    if k.ndim == 1:
        k = k[:, None] * k[None, :]
    return k / k.sum()


def np_upfirdn_2d(x: np.ndarray, k: np.ndarray, up: int = 1, down: int = 1, pad0: int = 0, pad1: int = 0
                  ) -> np.ndarray:
    """StyleGAN2 `upfirdn_2d` by definition: zero insertion, pad/crop, true 2-D convolution, subsampling.

    The padded/cropped, zero-stuffed signal `P` is built position by position: position `q` of `P` corresponds to
    position `q - pad0` of the zero-stuffed image, which holds `x[(q - pad0) / up]` when that is a whole in-range
    index and 0 otherwise (so negative pads simply start or end inside the image). The valid true convolution is
    `Y[y, x] = sum_{a, b} k[a, b] P[y + kh - 1 - a, x + kw - 1 - b]`; the output keeps every `down`-th sample.
    """
    n, h, w, c = x.shape
    kh, kw = k.shape

    def source_index(length: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        u = np.arange(length) - pad0
        ok = (u >= 0) & (u < size * up) & (u % up == 0)
        return np.where(ok, u // up, 0), ok

    ph, pw = h * up + pad0 + pad1, w * up + pad0 + pad1
    iy, oky = source_index(ph, h)
    ix, okx = source_index(pw, w)
    p = x[:, iy][:, :, ix] * (oky[:, None] & okx[None, :])[None, :, :, None]
    oh, ow = ph - kh + 1, pw - kw + 1
    out = np.zeros((n, oh, ow, c), dtype=np.float64)
    for a in range(kh):
        for b in range(kw):
            dy, dx = kh - 1 - a, kw - 1 - b
            out += k[a, b] * p[:, dy:dy + oh, dx:dx + ow, :]
    return out[:, ::down, ::down, :]


def np_upsample_2d(x: np.ndarray, k=None, factor: int = 2, gain: float = 1.0) -> np.ndarray:
    """StyleGAN2 `upsample_2d`; `k=None` is nearest neighbour (kernel `[1] * factor`)."""
    kk = normalized_kernel([1.0] * factor if k is None else k) * (gain * factor ** 2)
    p = kk.shape[0] - factor
    return np_upfirdn_2d(x, kk, up=factor, pad0=(p + 1) // 2 + factor - 1, pad1=p // 2)


def np_downsample_2d(x: np.ndarray, k=None, factor: int = 2, gain: float = 1.0) -> np.ndarray:
    """StyleGAN2 `downsample_2d`; `k=None` is box filtering (kernel `[1] * factor`)."""
    kk = normalized_kernel([1.0] * factor if k is None else k) * gain
    p = kk.shape[0] - factor
    return np_upfirdn_2d(x, kk, down=factor, pad0=(p + 1) // 2, pad1=p // 2)


# ----------------------------------------------------------------------------------------------------------------
# convolutions


def np_conv2d_valid(x: np.ndarray, w: np.ndarray, stride: int = 1) -> np.ndarray:
    """`tf.nn.conv2d(..., padding="VALID")` (cross-correlation): `out[i, j] = sum x[i*s + a, j*s + b] w[a, b]`."""
    n, h, wd, _ = x.shape
    kh, kw, _, c_out = w.shape
    oh, ow = (h - kh) // stride + 1, (wd - kw) // stride + 1
    out = np.zeros((n, oh, ow, c_out), dtype=np.float64)
    for a in range(kh):
        for b in range(kw):
            patch = x[:, a:a + stride * (oh - 1) + 1:stride, b:b + stride * (ow - 1) + 1:stride, :]
            out += np.einsum("nhwi,io->nhwo", patch, w[a, b])
    return out


def np_conv2d_same(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Stride-1 SAME cross-correlation for odd square kernels."""
    r = w.shape[0] // 2
    return np_conv2d_valid(np.pad(x, [(0, 0), (r, r), (r, r), (0, 0)]), w)


def np_transposed_conv_flipped(x: np.ndarray, w: np.ndarray, stride: int) -> np.ndarray:
    """StyleGAN2's transposed conv with spatially flipped weights, as a scatter-add.

    Every input pixel `(i, j)` adds `x[i, j] @ w[kh-1-a, kw-1-b]` at output `(i*stride + a, j*stride + b)`;
    output size `(H - 1) * stride + kh`.
    """
    n, h, wd, _ = x.shape
    kh, kw, _, c_out = w.shape
    wf = w[::-1, ::-1]
    out = np.zeros((n, (h - 1) * stride + kh, (wd - 1) * stride + kw, c_out), dtype=np.float64)
    for i in range(h):
        for j in range(wd):
            contrib = np.einsum("ni,abio->nabo", x[:, i, j, :], wf)
            out[:, i * stride:i * stride + kh, j * stride:j * stride + kw, :] += contrib
    return out


def np_upsample_conv_2d(x: np.ndarray, w: np.ndarray, k=(1, 3, 3, 1), factor: int = 2, gain: float = 1.0
                        ) -> np.ndarray:
    """StyleGAN2 `upsample_conv_2d`: transposed conv (flipped weights, stride `factor`), then FIR with gain f²."""
    kk = normalized_kernel(k) * (gain * factor ** 2)
    p = (kk.shape[0] - factor) - (w.shape[1] - 1)
    y = np_transposed_conv_flipped(x, w, factor)
    return np_upfirdn_2d(y, kk, pad0=(p + 1) // 2 + factor - 1, pad1=p // 2 + 1)


def np_conv_downsample_2d(x: np.ndarray, w: np.ndarray, k=(1, 3, 3, 1), factor: int = 2, gain: float = 1.0
                          ) -> np.ndarray:
    """StyleGAN2 `conv_downsample_2d`: FIR blur (padded once), then a stride-`factor` valid conv."""
    kk = normalized_kernel(k) * gain
    p = (kk.shape[0] - factor) + (w.shape[1] - 1)
    y = np_upfirdn_2d(x, kk, pad0=(p + 1) // 2, pad1=p // 2)
    return np_conv2d_valid(y, w, stride=factor)


def np_modulated_conv_2d(x: np.ndarray, w: np.ndarray, s: np.ndarray | None, demodulate: bool = True,
                         up: bool = False, down: bool = False) -> np.ndarray:
    """Per-sample oracle: build `w_b = w * s_b` (over C_in), demodulate each output channel, convolve sample b."""
    outs = []
    for b in range(x.shape[0]):
        wb = w.copy()
        if s is not None:
            wb = wb * s[b][None, None, :, None]
            if demodulate:
                wb = wb / np.sqrt(np.sum(wb ** 2, axis=(0, 1, 2), keepdims=True) + 1e-8)
        xb = x[b:b + 1]
        if up:
            outs.append(np_upsample_conv_2d(xb, wb))
        elif down:
            outs.append(np_conv_downsample_2d(xb, wb))
        else:
            outs.append(np_conv2d_same(xb, wb))
    return np.concatenate(outs, axis=0)


# ----------------------------------------------------------------------------------------------------------------
# minibatch standard deviation


def np_minibatch_stddev(x: np.ndarray, group_size: int = 4, num_channels: int = 1) -> np.ndarray:
    """Loop over samples: the group of sample i is every j with `j % (N/G) == i % (N/G)`, `G = min(group_size, N)`."""
    n, h, w, c = x.shape
    g = min(group_size, n)
    m = n // g
    cpf = c // num_channels
    extra = np.zeros((n, h, w, num_channels), dtype=np.float64)
    for i in range(n):
        members = [j for j in range(n) if j % m == i % m]
        assert len(members) == g
        for f in range(num_channels):
            vals = x[members][..., f * cpf:(f + 1) * cpf]  # [G, H, W, cpf]
            var = np.mean((vals - vals.mean(axis=0)) ** 2, axis=0)
            extra[i, :, :, f] = np.mean(np.sqrt(var + 1e-8))
    return np.concatenate([x, extra], axis=3)


# ----------------------------------------------------------------------------------------------------------------
# finite differences


def central_difference(func: Callable[[np.ndarray], float], theta: np.ndarray, step: float,
                       indices: np.ndarray) -> np.ndarray:
    """Central finite differences of scalar `func` at `theta` for the flat `indices`; returns `[len(indices)]`."""
    out = np.zeros(len(indices))
    for n, i in enumerate(indices):
        e = np.zeros(theta.size)
        e[i] = step
        e = e.reshape(theta.shape)
        out[n] = (func(theta + e) - func(theta - e)) / (2 * step)
    return out


def probe_indices(size: int, max_count: int, seed: int = 0) -> np.ndarray:
    """All flat indices when `size <= max_count`, else a fixed random subset of `max_count` of them."""
    if size <= max_count:
        return np.arange(size)
    return np.sort(np.random.default_rng(seed).choice(size, max_count, replace=False))
