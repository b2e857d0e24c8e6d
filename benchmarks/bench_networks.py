"""Generation speed of the default GANformer vs StyleGAN2 on this machine (ms/image), and their ratio.

Usage: python benchmarks/bench_networks.py [--resolutions 32 64 128 256] [--batch 2] [--repeats 10] [--no-xla]
                                           [--attention-sizes 16 32 64 128] [--attention-channels 256]

Both networks use their full default sizes (channel_max 512) and the stored (const) noise; each measurement is the
median over `--repeats` calls of a compiled `tf.function` after two warm-up calls; the two networks are timed
in alternation, so a change in machine load affects both alike. A second table times one GANformer attention layer
alone at a fixed width for growing images: its time per pixel stays flat (the bipartite attention is linear in the
number of pixels, unlike image self-attention).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Callable, Sequence

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from training.networks import build_networks  # noqa: E402
from training.networks.attention import AttentionLayer  # noqa: E402
from training.networks.positional import sinusoidal_grid  # noqa: E402


def generation_fn(preset: str, resolution: int, batch: int, xla: bool) -> Callable[[], None]:
    """A warmed-up callable that generates one batch with a freshly built network (const noise)."""
    G, _ = build_networks(preset, resolution)
    z = tf.random.normal((batch,) + G.latent_shape, seed=0)
    fn = tf.function(lambda z: G(z, noise_mode="const"), jit_compile=xla)

    def run() -> None:
        fn(z).numpy()

    for _ in range(2):
        run()
    return run


def time_interleaved(fns: Sequence[Callable[[], None]], repeats: int) -> list[float]:
    """Median seconds per call of each function, timed in alternation so load changes affect all of them alike."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, record in zip(fns, times):
            start = time.perf_counter()
            fn()
            record.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def attention_fn(size: int, channels: int, batch: int, xla: bool) -> Callable[[], None]:
    """A warmed-up callable running one default GANformer attention layer (k-means keys, 16 latents, layer norm,
    multiplicative integration, sinusoidal positions) on a `[batch, size², channels]` image."""
    rng = np.random.default_rng(0)
    d, k = 32, 16
    layer = AttentionLayer(rng, channels, d, channels, 1, from_pos_dim=d, to_pos_dim=d, to_len=k, kmeans=True,
                           norm="layer", integration="mul")
    x = tf.constant(rng.standard_normal((batch, size * size, channels)), tf.float32)
    y = tf.constant(rng.standard_normal((batch, k, d)), tf.float32)
    x_pos = tf.constant(sinusoidal_grid(size, d), tf.float32)
    y_pos = tf.constant(rng.uniform(-1, 1, (k, d)), tf.float32)
    fn = tf.function(lambda x, y: layer(x, y, x_pos, y_pos)[0], jit_compile=xla)

    def run() -> None:
        fn(x, y).numpy()

    for _ in range(2):
        run()
    return run


def attention_scaling(sizes: Sequence[int], channels: int, batch: int, repeats: int, xla: bool) -> None:
    """Prints the time of one attention layer per image and per 1000 pixels at fixed width (bipartite: linear)."""
    print(f"\nOne attention layer, {channels} channels, k=16, batch {batch}:")
    print(f"{'size':>5} {'ms/img':>8} {'ms/kpx':>8}")
    for size in sizes:
        t = time_interleaved([attention_fn(size, channels, batch, xla)], repeats)[0] * 1000.0 / batch
        print(f"{size:>5} {t:>8.2f} {t / (size * size / 1000):>8.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolutions", type=int, nargs="+", default=[32, 64, 128, 256])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--no-xla", action="store_true", help="plain tf.function without XLA")
    parser.add_argument("--attention-sizes", type=int, nargs="*", default=[16, 32, 64, 128],
                        help="image sizes for the attention-layer scaling table (none: skip it)")
    parser.add_argument("--attention-channels", type=int, default=256)
    args = parser.parse_args()
    print(f"TensorFlow {tf.__version__}, CPU threads: {os.cpu_count()}, batch {args.batch}, "
          f"XLA {'off' if args.no_xla else 'on'}")
    print(f"{'res':>5} {'GANformer ms/img':>17} {'StyleGAN2 ms/img':>17} {'ratio':>6} {'GANformer ms/kpx':>17}")
    for res in args.resolutions:
        fns = [generation_fn(p, res, args.batch, not args.no_xla) for p in ("ganformer-ffhq", "stylegan2")]
        g, s = (t * 1000.0 / args.batch for t in time_interleaved(fns, args.repeats))
        print(f"{res:>5} {g:>17.1f} {s:>17.1f} {g / s:>6.2f} {g / (res * res / 1000):>17.2f}", flush=True)
    if args.attention_sizes:
        attention_scaling(args.attention_sizes, args.attention_channels, args.batch, args.repeats, not args.no_xla)


if __name__ == "__main__":
    main()
