"""Throughput of generate.py's sampling loop for the default GANformer (ffhq preset sizes) on this machine.

Usage: python benchmarks/bench_generate.py [--resolutions 64 256] [--batch-size 4] [--images 16]
                                           [--compile graph] [--psi 0.7]

For each resolution a freshly built default GANformer (16 local latents of 32 dims, channel_max 512) runs the same
path as `generate.py`: `Sampler.generate` (truncation, const noise, in-graph uint8 conversion) followed by PNG
encoding of every image to a temporary folder. The first batch (tracing, oneDNN set-up) is timed separately as
"warm-up"; images/s is measured over the following `--images` images. Use `--compile eager graph xla` to compare.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from training.networks import build_networks  # noqa: E402
from training.vis.imageio import save_png  # noqa: E402
from training.vis.sampler import Sampler  # noqa: E402


def measure(resolution: int, batch_size: int, images: int, compile_mode: str, psi: float) -> tuple[float, float]:
    """Returns `(warm-up seconds, images per second)` for one configuration."""
    G, _ = build_networks("ganformer-ffhq", resolution)
    sampler = Sampler(G, batch_size=batch_size, compile=compile_mode)
    rs = np.random.RandomState(0)
    with tempfile.TemporaryDirectory() as out:
        def step(n: int, first_id: int) -> None:
            z = rs.randn(n, *G.latent_shape).astype(np.float32)
            for k, img in enumerate(sampler.generate(z, psi=psi)["images"]):
                save_png(os.path.join(out, f"sample_{first_id + k:06d}.png"), img)

        start = time.perf_counter()
        step(batch_size, 0)
        warmup = time.perf_counter() - start
        start = time.perf_counter()
        done = 0
        while done < images:
            n = min(batch_size, images - done)
            step(n, batch_size + done)
            done += n
        rate = done / (time.perf_counter() - start)
    return warmup, rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolutions", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--images", type=int, default=16, help="images timed after the warm-up batch")
    parser.add_argument("--compile", nargs="+", default=["graph"], choices=["eager", "graph", "xla"])
    parser.add_argument("--psi", type=float, default=0.7)
    args = parser.parse_args()
    devices = ", ".join(d.name for d in tf.config.list_logical_devices())
    print(f"TensorFlow {tf.__version__} on {devices}; {os.cpu_count()} CPU cores; batch {args.batch_size}")
    print(f"{'resolution':>10} {'compile':>8} {'warm-up s':>10} {'images/s':>9} {'s/image':>8}")
    for res in args.resolutions:
        for mode in args.compile:
            warmup, rate = measure(res, args.batch_size, args.images, mode, args.psi)
            print(f"{res:>10} {mode:>8} {warmup:>10.1f} {rate:>9.3f} {1 / rate:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
