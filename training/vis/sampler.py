"""Batched, compiled calls of a generator for sampling and visualization.

`Sampler` wraps a `Generator` (`G(z, labels, truncation_psi, noise_mode, return_maps, return_ws)`) in
`tf.function`s with a dynamic batch dimension, runs them in micro-batches of `batch_size`, converts images to uint8
inside the graph (`round(clip((x + 1) * 127.5, 0, 255))`), crops images and maps to the content `ratio` and
returns NumPy arrays. Traced functions are cached per (kind, truncation, maps) so repeated calls do not retrace.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Optional

import numpy as np
import tensorflow as tf

from dnnlib.tflib.ops.quantize import quantize
from dnnlib.crop import crop_to_content
from training.networks.synthesis import NOISE_MODES

MAP_CHOICES = (None, "last", "all")
COMPILE_MODES = ("eager", "graph", "xla")


def make_labels(label_dim: int, n: int, class_idx: Optional[int], rng_seeds: Iterable[int]) -> np.ndarray:
    """One-hot labels `[n, label_dim]` (`[n, 0]` for unconditional models).

    Args:
        label_dim: Number of classes of the model (0: unconditional).
        n: Number of samples.
        class_idx: Class for every sample; None draws one class per sample from `RandomState([seed, 7])`.
        rng_seeds: One int per sample (used only when `class_idx` is None).
    """
    labels = np.zeros((n, label_dim), np.float32)
    if label_dim == 0:
        return labels
    seeds = list(rng_seeds)
    for i in range(n):
        c = class_idx if class_idx is not None else np.random.RandomState([seeds[i] % (2 ** 32), 7]).randint(label_dim)
        labels[i, c] = 1.0
    return labels


class Sampler:
    """Runs a generator in micro-batches and returns uint8 images, attention maps and ws as NumPy arrays.

    Args:
        G: Generator (usually Gs).
        batch_size: Micro-batch size.
        noise_mode: `const` (the stored noise buffers: deterministic), `random` or `none`.
        ratio: Content aspect (height / width) the outputs are centrally cropped to.
        compile: `eager` (no tracing: best for a few calls or large models), `graph` (`tf.function`: a few seconds
            of tracing per function, then less per-call overhead) or `xla` (`tf.function(jit_compile=True)`).
    """

    def __init__(self, G: Any, batch_size: int = 4, noise_mode: str = "const", ratio: float = 1.0,
                 compile: str = "eager") -> None:
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        if compile not in COMPILE_MODES:
            raise ValueError(f"compile must be one of {COMPILE_MODES}, got {compile!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.G, self.batch_size, self.noise_mode, self.ratio, self.compile = G, batch_size, noise_mode, ratio, compile
        self.K, self.d = G.latent_shape
        self.label_dim = int(G.label_dim)
        self.has_maps = bool(getattr(G, "num_attention_layers", 0))
        self._fns: dict[tuple, Callable] = {}

    # ----------------------------------------------------------------------------------------------------------
    # graph functions

    def _compile(self, fn: Callable, specs: list[tf.TensorSpec]) -> Callable:
        if self.compile == "eager":
            return fn
        return tf.function(fn, input_signature=specs, autograph=False, jit_compile=self.compile == "xla" or None)

    def _outputs(self, images: tf.Tensor, maps: Optional[tf.Tensor], ws: Optional[tf.Tensor],
                 which_maps: Optional[str]) -> dict[str, tf.Tensor]:
        out = {"images": quantize(images),  # NaN/inf pixels quantize to 0: flag them, so callers can count them
               "nonfinite": tf.logical_not(tf.reduce_all(tf.math.is_finite(images), axis=[1, 2, 3]))}
        if which_maps is not None:
            out["maps"] = maps[:, :, -1] if which_maps == "last" else maps
        if ws is not None:
            out["ws"] = ws
        return out

    def _generate_fn(self, psi: float, maps: Optional[str], ws: bool) -> Callable:
        key = ("generate", float(psi), maps, ws)
        if key not in self._fns:
            G, mode = self.G, self.noise_mode

            def fn(z: tf.Tensor, labels: tf.Tensor, seed: tf.Tensor) -> dict[str, tf.Tensor]:
                res = G(z, labels=labels if self.label_dim else None, truncation_psi=psi, noise_mode=mode,
                        return_maps=maps is not None, return_ws=True, seed=seed if mode == "random" else None)
                res = list(res)
                images, w = res[0], res[-1]
                return self._outputs(images, res[1] if maps is not None else None, w if ws else None, maps)

            self._fns[key] = self._compile(fn, [tf.TensorSpec([None, self.K, self.d], tf.float32),
                                                tf.TensorSpec([None, self.label_dim], tf.float32),
                                                tf.TensorSpec([2], tf.int32)])
        return self._fns[key]

    def _mapping_fn(self, psi: float) -> Callable:
        key = ("mapping", float(psi))
        if key not in self._fns:
            G = self.G

            def fn(z: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
                w = G.mapping(z, labels if self.label_dim else None)
                return w if psi == 1.0 else G.truncate(w, psi)

            self._fns[key] = self._compile(fn, [tf.TensorSpec([None, self.K, self.d], tf.float32),
                                                tf.TensorSpec([None, self.label_dim], tf.float32)])
        return self._fns[key]

    def _synthesis_fn(self, maps: Optional[str]) -> Callable:
        key = ("synthesis", maps)
        if key not in self._fns:
            G, mode = self.G, self.noise_mode

            def fn(ws: tf.Tensor, seed: tf.Tensor) -> dict[str, tf.Tensor]:
                res = G.synthesis(ws, noise_mode=mode, return_maps=maps is not None,
                                  seed=seed if mode == "random" else None)
                images, att = (res if maps is not None else (res, None))
                images = crop_to_content(images, G.cfg.crop_ratio)  # as G(...) does
                att = crop_to_content(att, G.cfg.crop_ratio, axes=(4, 5)) if att is not None else None
                return self._outputs(images, att, None, maps)

            self._fns[key] = self._compile(fn, [tf.TensorSpec([None, self.K, None, self.d], tf.float32),
                                                tf.TensorSpec([2], tf.int32)])
        return self._fns[key]

    # ----------------------------------------------------------------------------------------------------------
    # batched NumPy API

    def _check_maps(self, maps: Optional[str]) -> None:
        if maps not in MAP_CHOICES:
            raise ValueError(f"maps must be one of {MAP_CHOICES}, got {maps!r}")
        if maps is not None and not self.has_maps:
            raise ValueError("this generator has no attention layers, so it has no attention maps")

    def _run(self, fn: Callable, arrays: list[np.ndarray], seed: Optional[int],
             progress: Optional[Callable[[int], None]]) -> dict[str, np.ndarray]:
        n = arrays[0].shape[0]
        parts: dict[str, list[np.ndarray]] = {}
        for b, start in enumerate(range(0, n, self.batch_size)):
            batch = [tf.convert_to_tensor(a[start: start + self.batch_size]) for a in arrays]
            if seed is not None:
                batch.append(tf.constant([seed % (2 ** 31), b], tf.int32))
            res = fn(*batch)
            for k, v in (res.items() if isinstance(res, dict) else [("ws", res)]):
                parts.setdefault(k, []).append(v.numpy())
            if progress is not None:
                progress(batch[0].shape[0])
        out = {k: np.concatenate(v, axis=0) for k, v in parts.items()}
        if "images" in out:
            out["images"] = crop_to_content(out["images"], self.ratio)  # no-op when G already cropped
        if "maps" in out:
            out["maps"] = crop_to_content(out["maps"], self.ratio, axes=(-2, -1))
        return out

    def generate(self, z: np.ndarray, labels: Optional[np.ndarray] = None, psi: float = 1.0,
                 maps: Optional[str] = None, ws: bool = False, seed: int = 0,
                 progress: Optional[Callable[[int], None]] = None) -> dict[str, np.ndarray]:
        """z `[N, K, d]` -> {"images": uint8 `[N, h, w, 3]`, "nonfinite": bool `[N]` (the image held NaN/inf
        values, written as 0), "maps": ..., "ws": float32 `[N, K, S, d]`}.

        Args:
            z: Latents.
            labels: `[N, label_dim]` (None: zero-width for unconditional models).
            psi: Truncation psi (1: none).
            maps: None, "last" (`[N, k, heads, h, w]`, last attention layer) or "all" (`[N, k, layers, heads, h, w]`).
            ws: Also return the (truncated) ws.
            seed: Base seed of the random noise (batch b uses `[seed, b]`); ignored unless noise_mode="random".
            progress: Called with the number of samples after each micro-batch.
        """
        self._check_maps(maps)
        z = np.asarray(z, np.float32)
        if z.ndim != 3 or z.shape[1:] != (self.K, self.d):
            raise ValueError(f"z must have shape [N, {self.K}, {self.d}], got {list(z.shape)}")
        labels = np.zeros((z.shape[0], self.label_dim), np.float32) if labels is None else labels
        return self._run(self._generate_fn(psi, maps, ws), [z, np.asarray(labels, np.float32)], seed, progress)

    def mapping(self, z: np.ndarray, labels: Optional[np.ndarray] = None, psi: float = 1.0) -> np.ndarray:
        """z `[N, K, d]` -> truncated ws `[N, K, S, d]`."""
        z = np.asarray(z, np.float32)
        labels = np.zeros((z.shape[0], self.label_dim), np.float32) if labels is None else labels
        return self._run(self._mapping_fn(psi), [z, np.asarray(labels, np.float32)], None, None)["ws"]

    def synthesize(self, ws: np.ndarray, maps: Optional[str] = None, seed: int = 0) -> dict[str, np.ndarray]:
        """ws `[N, K, S, d]` -> {"images": uint8 `[N, h, w, 3]`, "maps": ...} (see `generate`)."""
        self._check_maps(maps)
        return self._run(self._synthesis_fn(maps), [np.asarray(ws, np.float32)], seed, None)
