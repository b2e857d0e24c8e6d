"""Generation speed of the default GANformer vs StyleGAN2 on this machine (ms/image), and their ratio.

Usage: python benchmarks/bench_networks.py [--resolutions 32 64 128 256] [--batch 2] [--repeats 10] [--no-xla]

Both networks use their full default sizes (channel_max 512) and the stored (const) noise; each measurement is the
median over `--repeats` calls of a compiled `tf.function` after two warm-up calls; the two networks are timed
in alternation, so a change in machine load affects both alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Callable, Sequence

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # noqa: E402

from training.networks import build_networks  # noqa: E402


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolutions", type=int, nargs="+", default=[32, 64, 128, 256])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--no-xla", action="store_true", help="plain tf.function without XLA")
    args = parser.parse_args()
    print(f"TensorFlow {tf.__version__}, CPU threads: {os.cpu_count()}, batch {args.batch}, "
          f"XLA {'off' if args.no_xla else 'on'}")
    print(f"{'res':>5} {'GANformer ms/img':>17} {'StyleGAN2 ms/img':>17} {'ratio':>6} {'GANformer ms/kpx':>17}")
    for res in args.resolutions:
        fns = [generation_fn(p, res, args.batch, not args.no_xla) for p in ("ganformer-ffhq", "stylegan2")]
        g, s = (t * 1000.0 / args.batch for t in time_interleaved(fns, args.repeats))
        print(f"{res:>5} {g:>17.1f} {s:>17.1f} {g / s:>6.2f} {g / (res * res / 1000):>17.2f}", flush=True)


if __name__ == "__main__":
    main()
