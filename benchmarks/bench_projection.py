"""How well a trained model reconstructs held-out real images by projection, compared with its own samples.

Usage: python benchmarks/bench_projection.py --model RUN/network-final.pkl --real HELDOUT_DATASET [--count 16]
           [--sample-count N] [--steps 300] [--space w] [--batch-size 8] --output-dir OUT [--record JSON] [--figure PNG]

Runs the real command twice: `generate.py --project HELDOUT --project-count N --vis-latent-swap` (real images the
model never saw), and `generate.py --seeds 0-(N-1) --truncation-psi 1` followed by `generate.py --project` of those
samples (images the model can make exactly). As a yardstick it also measures the distance between each real target
and a random sample of the model (target i vs sample i), with the same perceptual distance. The record holds the
means of PSNR (dB) and perceptual distance at the start (mean w) and the end of the optimization, the seconds per
image (wall time of the optimization, tracing included, divided by the images), the machine, date and commit.
`--figure` writes one PNG: rows of targets, projections, soft attention maps and hard maps over the projections
(8 real targets), and the latent-swap grid of the first target. `--reuse` takes a part whose `projection.json`
(same model, steps, space and batch size) is already in the output folder instead of running it again (e.g. when the
two parts ran as separate processes).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

import generate  # noqa: E402
from dnnlib.files import write_json_atomic  # noqa: E402
from training.vis.imageio import make_grid, save_png  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIGURE_TARGETS = 8
FIGURE_SCALE = 2


def _machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    return f"{os.cpu_count()} cores, {cpu}, CPU only"


def _commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True).stdout.strip()


def _reusable(args: argparse.Namespace, out: str, count: int) -> dict | None:
    path = os.path.join(out, "projection.json")
    if not (args.reuse and os.path.isfile(path)):
        return None
    summary = json.load(open(path))
    s = summary["settings"]
    same = (s["model"], s["steps"], s["space"], s["batch_size"], len(summary["targets"])) == (
        args.model, args.steps, args.space, args.batch_size, count)
    return summary if same else None


def _project(args: argparse.Namespace, targets: str, out: str, count: int, extra: list[str]) -> dict:
    summary = _reusable(args, out, count)
    if summary is not None:
        print(f"Reusing {out}/projection.json")
        return summary
    start = time.perf_counter()
    rc = generate.main(["--model", args.model, "--project", targets, "--project-count", str(count),
                        "--steps", str(args.steps), "--space", args.space, "--batch-size", str(args.batch_size),
                        "--output-dir", out, *extra])
    if rc != 0:
        raise SystemExit(f"bench_projection: generate.py --project {targets} exited with {rc}")
    summary = json.load(open(os.path.join(out, "projection.json")))
    summary["wall_seconds"] = round(time.perf_counter() - start, 1)
    return summary


def _yardstick(real_dir: str, sample_dir: str, names: list[str], model_resolution: int) -> dict:
    """Mean PSNR and perceptual distance between real target i and random sample i."""
    import tensorflow as tf

    from training.projection.perceptual import load_perceptual
    from training.projection.projector import psnr

    targets = np.stack([np.asarray(Image.open(os.path.join(real_dir, n, "target.png"))) for n in names])
    samples = np.stack([np.asarray(Image.open(os.path.join(sample_dir, f"sample_{i:06d}.png")))
                        for i in range(len(names))])
    net = load_perceptual(model_resolution)
    as_float = lambda x: tf.constant(x.astype(np.float32) / 127.5 - 1.0)  # noqa: E731
    dist = net.distance(net.features(as_float(targets)), net.features(as_float(samples))).numpy()
    return {"psnr": round(float(psnr(samples, targets).mean()), 4), "perceptual": round(float(dist.mean()), 4)}


def _figure(real_dir: str, names: list[str], path: str) -> None:
    names = names[:FIGURE_TARGETS]
    rows = [np.stack([np.asarray(Image.open(os.path.join(real_dir, n, f)).convert("RGB")) for n in names])
            for f in ("target.png", "projection.png", "softmap.png", "blend.png")]
    grid = make_grid(np.concatenate(rows), cols=len(names), pad=2)
    swap = np.asarray(Image.open(os.path.join(real_dir, names[0], "latent-swap.png")).convert("RGB"))
    width = max(grid.shape[1], swap.shape[1])
    pad = lambda a: np.pad(a, ((0, 0), (0, width - a.shape[1]), (0, 0)), constant_values=255)  # noqa: E731
    canvas = np.concatenate([pad(grid), np.full([6, width, 3], 255, np.uint8), pad(swap)])
    canvas = np.repeat(np.repeat(canvas, FIGURE_SCALE, 0), FIGURE_SCALE, 1)
    save_png(path, canvas)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--real", required=True, help="held-out images: a dataset or a folder")
    p.add_argument("--count", type=int, default=16, help="real images")
    p.add_argument("--sample-count", type=int, help="samples of the model (default: --count)")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--space", default="w")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--output-dir", required=True)
    p.add_argument("--record", help="write the results as JSON here")
    p.add_argument("--figure", help="write the figure PNG here")
    p.add_argument("--reuse", action="store_true", help="reuse parts already projected into --output-dir")
    args = p.parse_args()
    real_dir, sample_dir = os.path.join(args.output_dir, "real"), os.path.join(args.output_dir, "samples")
    proj_dir = os.path.join(args.output_dir, "samples-projected")
    samples = args.sample_count or args.count
    real = _project(args, args.real, real_dir, args.count, ["--vis-latent-swap"])
    if _reusable(args, proj_dir, samples) is None and generate.main(
            ["--model", args.model, "--seeds", f"0-{max(samples, args.count) - 1}", "--truncation-psi", "1",
             "--output-dir", sample_dir, "--no-progress"]) != 0:
        raise SystemExit("bench_projection: generate.py --seeds failed")
    fake = _project(args, sample_dir, proj_dir, samples, [])
    names = [t["name"] for t in real["targets"]]
    record = {"command": "python " + " ".join(sys.argv), "date": datetime.datetime.now(datetime.timezone.utc)
              .strftime("%Y-%m-%d %H:%M UTC"), "commit": _commit(), "machine": _machine(),
              "settings": real["settings"],
              "real": dict(real["mean"], wall_seconds=real.get("wall_seconds"), count=args.count),
              "samples": dict(fake["mean"], wall_seconds=fake.get("wall_seconds"), count=samples),
              "real_vs_random_sample": _yardstick(real_dir, sample_dir, names, _resolution(real_dir, names))}
    print(json.dumps(record, indent=2))
    if args.record:
        write_json_atomic(args.record, record)
    if args.figure:
        _figure(real_dir, names, args.figure)


def _resolution(real_dir: str, names: list[str]) -> int:
    return Image.open(os.path.join(real_dir, names[0], "target.png")).size[0]


if __name__ == "__main__":
    main()
