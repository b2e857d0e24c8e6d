"""Loader throughput benchmark: images/s delivered by `training.data.loader` at batch 32 on CPU.

Writes small temporary datasets of built-in `shapes` images (64x64 and 256x256, raw and PNG-encoded
records), then times `Dataset.tf_dataset(32, shuffle=True, repeat=True)` after a warm-up, the way the
training loop consumes it (shuffled, repeated, batched, prefetched). Files are read from the OS page
cache after the first pass, as they are during training on a machine with enough memory.

Usage:
    python benchmarks/bench_loader.py [--seconds 5] [--resolutions 64,256] [--encodings raw,png]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from training.data import shapes_render  # noqa: E402
from training.data.writer import DatasetWriter  # noqa: E402
from training.data.loader import open_dataset  # noqa: E402

BATCH = 32


def write_dataset(data_dir: str, name: str, images: np.ndarray, records: int, encoding: str) -> str:
    """Writes `records` records cycling through `images` [N, R, R, 3]; returns the dataset folder."""
    res = images.shape[1]
    with DatasetWriter(data_dir, name, resolution=res, ratio=1.0, num_shards=4, encoding=encoding) as writer:
        for i in range(records):
            writer.add(images[i % len(images)])
        writer.commit()
    return os.path.join(data_dir, name)


def measure(path: str, seconds: float) -> float:
    """Images per second delivered by the loader over about `seconds` after a warm-up."""
    it = iter(open_dataset(path).tf_dataset(BATCH, shuffle=True, repeat=True, seed=0))
    for _ in range(20):
        next(it)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        count += int(next(it).shape[0])
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="timed seconds per configuration")
    parser.add_argument("--resolutions", default="64,256", help="comma list of resolutions")
    parser.add_argument("--encodings", default="raw,png", help="comma list of record encodings")
    args = parser.parse_args()
    print(f"CPU cores: {os.cpu_count()}, batch {BATCH}, {args.seconds:.0f} s per configuration")
    with tempfile.TemporaryDirectory(prefix="bench_loader_") as tmp:
        for res in map(int, args.resolutions.split(",")):
            unique = 512 if res <= 64 else 64
            images = np.concatenate(list(shapes_render.generate(0, unique, res, workers=os.cpu_count() or 1)))
            records = max(4096, 16 * unique) if res <= 64 else 1024
            for encoding in args.encodings.split(","):
                path = write_dataset(tmp, f"shapes{res}{encoding}", images, records, encoding)
                size = sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path)) / records
                rate = measure(path, args.seconds)
                print(f"{res}x{res} {encoding:>3}: {rate:8.0f} images/s  ({size / 1024:.1f} KiB/record)")


if __name__ == "__main__":
    main()
